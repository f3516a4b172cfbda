"""citybrain: a streaming city-operations brain (Kafka, faust, detectors, playbooks).

Every command ends with one line saying what went wrong, never a traceback, and one of
these exit statuses (also in README "Commands"):

  0    done
  1    the command ran and the answer is no: checks failed, the API refused the request,
       the demo raised no alert, no run was created in a campaign report's period
  2    a bad command line, input file or setting (the message names it)
  3    a service the command needs did not answer or could not start: Kafka, Prometheus,
       a worker's operator API, Grafana; or a port it listens on is already in use;
       or another demo is running on the same stack
  70   an unexpected error, i.e. a bug (CITYBRAIN_DEBUG=1 prints the traceback)
  130  interrupted (Ctrl-C or SIGTERM); a worker whose shutdown could not
       finish (Kafka down) in 10 s or that got a second signal
  141  the output was closed early (`citybrain ... | head`); nothing more is printed
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import math
import os
import re
import shlex
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from citybrain.commands import (
    API_SETTINGS,
    RUN_DIR_SETTINGS,
    command_line,
    make_command,
    start_stack_hint,
    written_path,
)
from citybrain.errors import ListenError, utf8_text
from citybrain.text import agreeing, cell, counted, day, display_width, duration, pad, zone
from detectors import DEFAULT_DETECTOR, DEFAULT_THRESHOLD, OWN_THRESHOLDS
from playbooks.errors import did_you_mean, shown
from streams.errors import StreamsError, closest, show
from streams.events import MAX_PACK_READINGS, duplicate_keys, json_int
from streams.settings import REPO_ROOT, Settings, load_settings

if TYPE_CHECKING:
    import faust

    from citybrain.detect import Scored
    from citybrain.rehearse import DepartmentUnits, Incident
    from detectors import Detector
    from playbooks.grid import Grid
    from playbooks.routing import Route


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SERVICE = 3
EXIT_BUG = 70
EXIT_INTERRUPTED = 130
EXIT_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a filter whose reader went away
EXIT_STATUSES = (
    EXIT_OK,
    EXIT_FAILED,
    EXIT_USAGE,
    EXIT_SERVICE,
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_PIPE,
)


class CliError(Exception):
    """A command failed for a reason the user can act on: ``message`` says what was
    tried and what to do, ``status`` is one of the documented exit statuses."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def usage_error(command: str, message: str) -> CliError:
    """A bad command line found after parsing, said as the parser says its own (t51:
    ``detect --input s.csv`` was "give --input and --output, or …", no command, no
    help): ``citybrain: detect: --input needs --output (…); see `citybrain detect
    --help` ``, exit status 2. ``command``: the words after ``citybrain``."""
    typed = command_line(*command.split(), "--help", only=())
    return CliError(f"{command}: {message}; see `{typed}`")


_WARNED_UNKNOWN = False


def _settings() -> Settings:
    """The settings from the environment; the first call of a process also warns, on
    stderr, of each ``CITYBRAIN_*`` variable that is no setting (a misspelt one)."""
    global _WARNED_UNKNOWN
    if not _WARNED_UNKNOWN:
        _WARNED_UNKNOWN = True
        from streams.settings import unknown_variables

        for line in unknown_variables(os.environ):
            print(f"citybrain: warning: {line}", file=sys.stderr)
    return load_settings()


def cmd_stack(args: argparse.Namespace) -> int:
    from citybrain.stack import KafkaBroker, MosquittoBroker, PrometheusServer
    from citybrain.stack.topics import PartitionCountError, create_topics

    s = _settings()
    kafka, prom, mqtt = KafkaBroker(s), PrometheusServer(s), MosquittoBroker(s)
    if args.action == "up":
        from playbooks.loader import load_grid

        # The grid before anything starts: Prometheus' location rules are written from it,
        # and a grid that could not be read there left Kafka running behind an unexpected
        # error (trial 27). Then every port: a taken Prometheus port found after Kafka
        # started left Kafka running behind an exit 3.
        load_grid(s.grid_file)
        for component in (kafka, prom, mqtt):
            component.check_ports()
        # Each says whether this command started it: a second `stack up` said "ready"
        # as the first did, and a newcomer could not tell it had been up all along.
        was = {name: comp.running() for name, comp in (("k", kafka), ("p", prom), ("m", mqtt))}

        def ready(key: str) -> str:
            return "ready (already running)" if was[key] else "ready"

        try:
            if not was["k"]:
                # t60: 40 s of silence on 2 cores before "kafka ready", as if it hung.
                print(
                    f"kafka       starting on {s.kafka_bootstrap} (about 30 s on 2 cores, at "
                    f"most 90 s; log: {kafka.log_file})",
                    flush=True,
                )
            kafka.start()
            print(f"kafka       {ready('k')} on {s.kafka_bootstrap}")
            from citybrain.stack.topics import task_topics

            try:
                created = create_topics(s)
            except PartitionCountError as exc:
                raise CliError(
                    f"{exc}; Kafka stays up (`{command_line('stack', 'down')}` stops it)"
                ) from None
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
        if demo is not None:
            print(f"{'demo':11} stopped (pid {demo.pid}, topic prefix {demo.prefix})")
        worker = "stopped" if stop_demo_worker(s) else "was not running"
        if demo is not None and worker == "was not running":
            worker = "stopped with the demo"  # the demo stops its own worker (t48)
        print(f"{'demo worker':11} {worker}")
        for name, comp in (("mosquitto", mqtt), ("prometheus", prom), ("kafka", kafka)):
            print(f"{name:11} {'stopped' if comp.stop() else 'was not running'}")
        if args.wipe:
            from citybrain.demo import DemoFiles

            kafka.wipe()
            # The last demo's topics and runs went with the data: its record would still
            # offer `restart-worker` and lend printed commands its settings (t46).
            DemoFiles.of(s).state.unlink(missing_ok=True)
            print("kafka       data wiped")
    elif args.action == "restart-worker":
        return restart_demo_worker(s)
    else:
        ok = True
        # Mosquitto serves only `citybrain ingest mqtt` (the demo does not start it): its
        # state is shown but does not count against the stack being ready.
        for name, comp, where, needed in (
            ("kafka", kafka, s.kafka_bootstrap, True),
            ("prometheus", prom, prom.url, True),
            ("mosquitto", mqtt, mqtt.url, False),
        ):
            state = "ready" if comp.ready() else ("starting" if comp.running() else "down")
            ok = ok and (state == "ready" or not needed)
            # The commands named are typed as they work in this shell (t60: a bare
            # `citybrain ingest mqtt` where citybrain is not on the PATH, and no word of
            # how to start it).
            start = f"; `{command_line('stack', 'up')}` starts it" if state == "down" else ""
            note = "" if needed else f" (optional, for `{command_line('ingest', 'mqtt')}`{start})"
            print(f"{name:11} {state:8} {where}{note}")
        for line in demo_worker_lines(s):
            print(line)
        if not ok:
            print(f"citybrain: the stack is not ready: {start_stack_hint()}", file=sys.stderr)
        return EXIT_OK if ok else EXIT_FAILED
    return 0


def demo_worker_lines(settings: Settings) -> list[str]:
    """`stack status`'s lines on the demo: a demo running now (pid, topic prefix); the
    last demo's worker running or down (optional), or stopped without `stack down` (it
    crashed or was killed), with its log, the log's last line and the command that starts
    it again tracked by the stack (``restart_advice``); and, when the demo's worker is
    not running, a server that answers on its port all the same (not the stack's: `stack
    down` leaves it, and the next demo's worker cannot listen there)."""
    from citybrain.demo import DemoFiles, demo_worker, restart_advice, running_demo
    from citybrain.stack.process import read_pid, tail

    lines = []
    demo = running_demo(settings)
    if demo is not None:
        lines.append(f"{'demo':11} {'running':8} pid {demo.pid}, topic prefix {demo.prefix or '?'}")
    state, doc = demo_worker(settings)
    url = str((doc or {}).get("worker_url") or f"http://127.0.0.1:{settings.worker_port}")
    if state == "running":
        pid = read_pid(DemoFiles.of(settings).pid)
        return [*lines, f"{'demo worker':11} {'running':8} {url} (pid {pid})"]
    if state == "stopped":
        log = (doc or {}).get("worker_log") or DemoFiles.of(settings).log
        last = " ".join(tail(Path(log), 1).split())
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
    if port is not None and _answers("127.0.0.1", port):
        lines.append(
            f"{'':11} but something answers on port {port}: a server the stack did not start "
            "(a worker started by hand?); `stack down` leaves it running and the next demo's "
            "worker cannot listen there: stop it where it was started"
        )
    return lines


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
    log: `stack status` shows it, `stack down` stops it), and wait until it serves.
    CliError (1) while a demo runs or when no demo ran here; (3) when its Kafka does not
    answer or its port is taken; ``StackError`` (3) when it exits while starting."""
    from citybrain.demo import (
        DemoFiles,
        demo_worker,
        restart_env,
        running_demo,
        wait_for_worker,
        worker_starting_line,
    )
    from citybrain.ports import can_bind
    from citybrain.stack.process import read_pid, spawn

    files = DemoFiles.of(settings)
    demo = running_demo(settings)
    if demo is not None:
        raise CliError(
            f"a demo is running (pid {demo.pid}, topic prefix {demo.prefix}) and runs its own "
            "worker; restart-worker starts a demo's worker again after the demo ended",
            EXIT_FAILED,
        )
    state, doc = demo_worker(settings)
    if doc is None:
        raise CliError(
            f"no demo ran under {settings.run_dir} (no {files.state}): there is no demo "
            f"worker to start again; `{make_command('demo')}` in the checkout runs a demo",
            EXIT_FAILED,
        )
    url = str(doc.get("worker_url") or f"http://127.0.0.1:{settings.worker_port}")
    prefix = doc.get("topic_prefix")
    if state == "running":
        print(
            f"demo worker already running (pid {read_pid(files.pid)}) on {url}, topic prefix "
            f"{prefix}; `{command_line('stack', 'down')}` stops it"
        )
        return EXIT_OK
    env = restart_env(settings, doc)
    host = env.get("CITYBRAIN_KAFKA_HOST", settings.kafka_host)
    kafka_port = env.get("CITYBRAIN_KAFKA_PORT", str(settings.kafka_port))
    if not (kafka_port.isascii() and kafka_port.isdigit() and _answers(host, int(kafka_port))):
        raise CliError(
            f"no Kafka broker answers at {host}:{kafka_port}, the demo's worker's: "
            f"{start_stack_hint()}, then run this again",
            EXIT_SERVICE,
        )
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
    pid = spawn(
        [sys.executable, "-m", "citybrain.cli", "worker"],
        log,
        files.pid,
        {**os.environ, **env},
    )
    wait_for_worker(files, f"{url}/metrics", pid)
    print(
        f"demo worker started (pid {pid}) on {url}, topic prefix {prefix}; log: "
        f"{doc.get('worker_log') or files.log}; `{command_line('stack', 'status')}` shows it, "
        f"`{command_line('stack', 'down')}` stops it"
    )
    return EXIT_OK


def _answers(host: str, port: int) -> bool:
    """Whether ``host:port`` accepts a TCP connection within 3 seconds."""
    import socket

    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError:
        return False
    return True


def _require_kafka(settings: Settings) -> None:
    """Raise CliError (status 3) unless some bootstrap server accepts a TCP connection:
    faust and kafka-python would otherwise retry, silently, for minutes."""
    for server in settings.kafka_bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if port.isascii() and port.isdigit() and _answers(host, int(port)):
            return
    raise CliError(
        f"no Kafka broker answers at {settings.kafka_bootstrap}: {start_stack_hint()}, "
        "or point CITYBRAIN_KAFKA_HOST/CITYBRAIN_KAFKA_PORT at a running one",
        EXIT_SERVICE,
    )


def _require_partition_counts(settings: Settings, roles: tuple[str, ...]) -> None:
    """Raise CliError (status 2) when an existing topic of ``roles`` has another
    partition count than CITYBRAIN_PARTITIONS: a process that places packs on partitions
    it computes would send them where the worker refuses them (``wrong_partition``) or
    to partitions that do not exist. A broker that cannot be asked is left to the
    command's own sends to report."""
    from kafka.errors import KafkaError

    from citybrain.stack.topics import PartitionCountError, require_partition_counts

    try:
        require_partition_counts(settings, roles)
    except PartitionCountError as exc:
        raise CliError(str(exc)) from None
    except KafkaError:
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
    import faust

    from streams.app import create_app, settle_garbage_collector
    from streams.logs import LifecycleFilter, RepeatFilter

    class QuietWorker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            # mode leaves the root logger at DEBUG and filters in the handler, so every
            # aiokafka and faust debug call built a log record (8 % of a catch-up run).
            super().on_setup_root_logger(logger, level)
            logger.setLevel(level)
            logging.getLogger("aiokafka.consumer.group_coordinator").addFilter(
                retriable_coordinator_error_is_a_warning
            )
            repeats = RepeatFilter()  # one per worker: its counts span every handler
            lifecycle = LifecycleFilter()  # faust's "Starting..."/"Stopping..." at INFO
            for handler in logger.handlers:
                handler.addFilter(repeats)
                handler.addFilter(lifecycle)

        # mode-streaming 0.7.1's Worker._on_sigint/_on_sigterm (installed with
        # loop.add_signal_handler) schedule a shutdown and ignore every later signal;
        # with Kafka down that shutdown waited on commits and flushes for over a minute.
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
    with _worker_log_format():
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
    worker.execute_from_commandline()
    return 0


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

    from citybrain.stack.topics import PartitionCountError, create_topics, faust_topics

    try:
        create_topics(settings, faust_topics(app, settings.partitions))
    except PartitionCountError as exc:
        # Before joining the group: a worker counting other partitions than its topics
        # lost readings (dead-lettered wrong_partition) and crashed writing its tables.
        raise CliError(str(exc)) from None
    except KafkaError as exc:
        print(
            f"citybrain: warning: could not create the topics (prefix {settings.topic_prefix!r}): "
            f"{_kafka_reason(exc)}; the worker waits for them (create them, or let the broker "
            "auto-create them)",
            file=sys.stderr,
        )


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


# How long a stopping worker may take to commit and flush before it exits anyway.
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


def cmd_replay(args: argparse.Namespace) -> int:
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from streams.errors import SeriesFileError
    from streams.feeds import BadRow, Replayer, load_events
    from streams.partitioning import ReadingPacker

    for name in args.files:
        # Said as every command says it (the reader's "cannot read: No such file or
        # directory" was replay's own wording, helper brief t37).
        path = Path(name)
        _need_feed(path, "FILE")
    s = _settings()
    bad: list[BadRow] = []
    try:
        events = load_events(
            args.files,
            on_error=args.on_error,
            bad_rows=bad,
            max_message_bytes=args.max_message_bytes,
        )
    except SeriesFileError as exc:
        # detect's input given to replay: the symmetric hint of detect's (t53 leftover).
        raise CliError(
            f"{exc}; nothing was sent: a timestamp,value file is one series, the input of "
            f"`{command_line('detect', '--input', str(exc.path.absolute()))}`; replay "
            "sends readings of named sensors (docs/events.md)"
        ) from None
    except StreamsError as exc:
        row = _row_fault(str(exc)) and args.on_error == "stop"
        raise CliError(
            f"{exc}; nothing was sent (a replay reads every file before it sends): fix "
            + (
                "that row, or give --on-error skip to send the good rows and list the bad ones"
                if row
                else "the file, or leave it out if it is not a reading or incident CSV "
                "(docs/events.md)"
            )
        ) from None
    if args.skip > len(events):
        raise CliError(f"--skip is {args.skip}, but the files hold only {len(events):,} events")
    _require_kafka(s)
    if args.pack:  # packs go to the partition computed here, single readings by key
        _require_partition_counts(s, ("readings",))
    for line in replay_target(s, given_argv(args)):
        print(line)
    for row in bad:
        print(f"skipped {row}", file=sys.stderr)
    todo = events[args.skip :]
    if args.skip:
        print(f"resuming: the first {args.skip:,} of {len(events):,} events are not sent again")
    ahead = ahead_of_clock(todo, s.max_future_skew, time.time())
    if ahead:
        print(f"citybrain: warning: {ahead}", file=sys.stderr)
    slow = replay_duration_note(todo, None if args.max else args.speed)
    if slow:
        print(slow)
    replayer = Replayer(
        s.kafka_bootstrap,
        s.topic("readings"),
        s.topic("incidents"),
        s.kafka_python_options(),
        ReadingPacker(s.partitions, args.pack, args.max_message_bytes) if args.pack else None,
        max_message_bytes=args.max_message_bytes,
    )
    # A SIGTERM (kill, a service manager) ends the replay as Ctrl-C does: with how far
    # it got and the command that sends the rest.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        try:
            with Progress(
                TextColumn("replay"),
                BarColumn(),
                TextColumn(PROGRESS_COUNT),
                TextColumn("events"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
            ) as progress:
                task = progress.add_task("replay", total=len(todo))
                try:
                    stats = replayer.replay(
                        todo, None if args.max else args.speed, lambda n: progress.advance(task, n)
                    )
                except KeyboardInterrupt:
                    # The bar hears of sent events every 1,000: show the true count,
                    # the one the message below gives, before the bar stops.
                    replayer.drain()
                    sent = replayer.stats.readings + replayer.stats.incidents
                    progress.update(task, completed=sent)
                    progress.refresh()
                    raise
        except KeyboardInterrupt:
            stats = replayer.stats
            sent = stats.readings + stats.incidents
            refused = stats.failed_readings + stats.failed_incidents
            if stats.failed:
                # Said as a finished replay says it: interrupted, the refused events were
                # counted as sent and left out of the resume command unsaid (trial 26).
                print(replay_refused(stats, args.max_message_bytes), file=sys.stderr)
            raise CliError(
                replay_stopped(args, args.skip + sent, len(events), events, refused),
                EXIT_INTERRUPTED,
            ) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        replayer.close()
    refused = stats.failed_readings + stats.failed_incidents
    print(
        replay_summary(
            len(events) + len(bad),
            stats.readings - stats.failed_readings,
            stats.incidents - stats.failed_incidents,
            len(bad),
            args.skip,
            refused,
        )
        + f" ({stats.seconds:.1f}s)"
    )
    if stats.failed:  # what was not sent first: it decides the exit status
        print(replay_refused(stats, args.max_message_bytes), file=sys.stderr)
    unregistered = unregistered_note(todo, s.grid_file, s.topic_prefix)
    if unregistered:
        print(f"citybrain: warning: {unregistered}", file=sys.stderr)
    return 1 if stats.failed else 0


# An unregistered sensor's first few ids are named, each with the closest registered one.
UNREGISTERED_SHOWN = 3


def unregistered_note(events: Sequence[Any], grid_file: Path, prefix: str) -> str:
    """How many of ``events`` (``streams.feeds.Event``) name a sensor (a reading) or a cell
    (a reading or a report) the grid in ``grid_file`` (the worker's CITYBRAIN_GRID_FILE)
    does not have, with the first ``UNREGISTERED_SHOWN`` ids of each and the closest the
    grid has: a worker reading ``prefix`` dead-letters them as unknown_sensor or
    unknown_cell (a newcomer's typo in a CSV was "sent 1 reading", exit 0), and the
    ``deadletters`` command that lists them, for that prefix. "" when all are there, or
    the grid cannot be read (the worker's own start says why)."""
    from playbooks.errors import PlaybookError
    from playbooks.loader import load_grid
    from streams.events import Reading

    try:
        grid = load_grid(grid_file)
    except (PlaybookError, OSError):
        return ""
    # Per reason, as the worker checks them (a cell before the sensor): rows, ids in the
    # order first met.
    rows = {"unknown_cell": 0, "unknown_sensor": 0}
    ids: dict[str, dict[str, None]] = {reason: {} for reason in rows}
    for event in events:
        cell = getattr(event, "grid_cell", None)
        if isinstance(cell, str) and cell not in grid.cells:
            reason, given = "unknown_cell", cell
        elif isinstance(event, Reading) and event.sensor_id not in grid.sensors:
            reason, given = "unknown_sensor", event.sensor_id
        else:
            continue
        rows[reason] += 1
        ids[reason].setdefault(given)
    if not any(rows.values()):
        return ""
    parts = []
    for reason, what, near in (
        ("unknown_sensor", "a sensor", grid.near_sensor),
        ("unknown_cell", "a cell", grid.near_cell),
    ):
        if not rows[reason]:
            continue
        named = list(ids[reason])[:UNREGISTERED_SHOWN]
        # An id is shown in its first 80 characters: a 120,000-character sensor id was
        # printed whole, a 360 KB warning line.
        shown = ", ".join(f"{show(given)}{near(given)}" for given in named)
        more = len(ids[reason]) - len(named)
        parts.append(
            f"{counted(rows[reason], 'row')} named {what} that {grid_file.name} "
            f"(CITYBRAIN_GRID_FILE) does not have, dead-lettered as {reason}: {shown}"
            + (f" and {more:,} more" if more else "")
        )
    listed = command_line("deadletters", env={"CITYBRAIN_TOPIC_PREFIX": prefix})
    return (
        "; ".join(parts)
        + f" (by a worker reading prefix {prefix!r}, which raises no alert on them: `{listed}`)"
    )


def replay_refused(stats: Any, max_message_bytes: int) -> str:
    """What Kafka refused of a replay (a ``ReplayStats`` with failures), and for messages
    too large for the broker what to do (trial 19: "Kafka refused 2 messages; the first:
    MessageSizeTooLargeError: None", after a summary that counted their 20,000 readings
    as sent)."""
    held = ", ".join(
        counted(n, noun)
        for n, noun in ((stats.failed_readings, "reading"), (stats.failed_incidents, "incident"))
        if n
    )
    line = (
        f"citybrain: Kafka refused {counted(stats.failed, 'message')} ({held}, not sent); "
        f"the first: {stats.first_failure}"
    )
    if "MessageSizeTooLarge" in stats.first_failure:
        line += (
            f". The largest was {stats.largest_failed:,} bytes: the broker takes smaller "
            "messages (its message.max.bytes, or the topic's max.message.bytes; Kafka's "
            f"default is 1,048,588) than --max-message-bytes {max_message_bytes:,} allows: "
            "give a smaller --max-message-bytes (with --pack, packs are split below it)"
        )
    return line


# The replay bar's count, with thousands separators like every count printed: rich's
# MofNCompleteColumn gave "15/11520" beside "11,520 events" in the lines around it.
PROGRESS_COUNT = "{task.completed:,.0f}/{task.total:,.0f}"


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


# A replay estimated to take longer than this at its speed says so before it starts.
LONG_REPLAY_SECONDS = 600.0


def replay_duration_note(events: Sequence[Any], speed: float | None) -> str:
    """One line when replaying ``events`` (in time order, each with ``ts`` in seconds)
    at ``speed`` x real time would take longer than LONG_REPLAY_SECONDS, naming the
    estimate and the options that shorten it; "" otherwise (and for ``--max``)."""
    if speed is None or len(events) < 2:
        return ""
    seconds = (events[-1].ts - events[0].ts) / speed
    if seconds <= LONG_REPLAY_SECONDS:
        return ""
    if seconds > 100 * 365 * 86_400:  # inf for --speed 1e-320: int(inf) raised
        took = "more than a century"
        return (
            f"note: at --speed {speed:g} the replay takes {took}; give --max to send them "
            "as fast as Kafka takes them, or a higher --speed"
        )
    span = _duration(events[-1].ts - events[0].ts)  # "12 min", not "0.2 h"
    return (
        f"note: these events span {span} of event time: at --speed {speed:g} the "
        f"replay takes about {_duration(seconds)}; give --max to send them as fast as "
        "Kafka takes them, or a higher --speed"
    )


def _duration(seconds: float) -> str:
    """``3 min``, ``16 h 5 min``: a duration as a person reads it; past 2 days, in days
    or years as ``text.duration`` says them."""
    if seconds >= 172_800:
        return duration(seconds)
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{max(minutes, 1)} min"
    return f"{minutes // 60} h" + (f" {minutes % 60} min" if minutes % 60 else "")


def ahead_of_clock(events: Sequence[Any], skew: float, now: float) -> str:
    """The warning for events whose event time is more than ``skew`` seconds after
    ``now`` (the worker's rule: it dead-letters them as ``in_future`` instead of
    detecting on them), or "" when there are none."""
    from streams.events import format_ts

    late = [e for e in events if e.ts > now + skew]
    if not late:
        return ""
    return (
        f"{counted(len(late), 'event')} of {len(events):,} {agreeing(len(late), 'is', 'are')} "
        f"more than {skew:g} s ahead "
        f"of this machine's clock (the first: {format_ts(late[0].ts)}): the worker "
        "dead-letters them (reason in_future, CITYBRAIN_MAX_FUTURE_SKEW) instead of "
        "scoring them"
    )


def _need_feed(path: Path, option: str) -> None:
    """``_need_file`` for a reading or incident CSV given to ``option``; a directory is
    answered with the feed files in it."""
    _need_file(
        path,
        option,
        _replay_files_in(path) if path.is_dir() else "",
        kind="CSV",
        expects=("feed",),
    )


def _replay_files_in(directory: Path) -> str:
    """What to give instead of ``directory``: the canonical reading and incident CSVs in
    it (a glob would also take any other CSV there, e.g. the classifier's training file
    beside the slices in datasets/)."""

    from streams.csvfile import Record, read_records
    from streams.feeds import INCIDENT_COLUMNS, READING_COLUMNS, looks_like_row

    found = []
    for path in sorted(directory.iterdir()):
        if not path.name.endswith((".csv", ".csv.gz")) or not path.is_file():
            continue
        try:
            header = next(read_records(path, looks_like_row(len(READING_COLUMNS))), None)
        except Exception:  # an unreadable file is simply not suggested
            continue
        if isinstance(header, Record) and header.fields in (READING_COLUMNS, INCIDENT_COLUMNS):
            found.append(str(path))
    if not found:
        return "it holds no reading or incident CSV (docs/events.md)"
    return f"name the reading and incident CSVs in it: {shlex.join(found)}"


def prefix_said(settings: Settings) -> str:
    """``prefix 'x': CITYBRAIN_TOPIC_PREFIX``, or for the default ``prefix 'citybrain':
    CITYBRAIN_TOPIC_PREFIX's default`` (t60's walk: a shell without the variable read
    "prefix 'citybrain': CITYBRAIN_TOPIC_PREFIX" as if it had been set)."""
    default = Settings.model_fields["topic_prefix"].default
    source = "CITYBRAIN_TOPIC_PREFIX" + ("'s default" if settings.topic_prefix == default else "")
    return f"prefix {settings.topic_prefix!r}: {source}"


def replay_target(settings: Settings, argv: Sequence[str]) -> list[str]:
    """Where a replay sends (Kafka and topics), and, when the last demo's worker still
    runs under another topic prefix, how to send to it instead: ``argv``, the replay's
    own arguments as given, every option kept (t40: `--max --on-error skip` were
    dropped, and the suggested command stopped at the bad row and ran 3 min at 60x) but
    those about this prefix's progress (``PROGRESS_OPTIONS``: ``--skip``)."""
    lines = [
        f"sending to Kafka at {settings.kafka_bootstrap}, topics {settings.topic('readings')} "
        f"and {settings.topic('incidents')} ({prefix_said(settings)})"
    ]
    return lines + _feed_the_demo(settings, argv, "")


def ingest_target(settings: Settings, argv: Sequence[str]) -> list[str]:
    """Where an ingest writes (Kafka and topics), and, when the last demo's worker still
    runs under another topic prefix, the exact command (``argv``: this command's
    arguments) that feeds it instead: readings written under the default prefix never
    reach a demo's worker, which reads ``demo-…`` topics."""
    from citybrain.demo import DemoFiles, demo_gateway_hint

    lines = [
        f"writing to Kafka at {settings.kafka_bootstrap}, topic {settings.topic('readings')} "
        f"(unmapped messages to {settings.topic('deadletter')}; {prefix_said(settings)})"
    ]
    env = {}
    if "http" in argv[:2] and demo_gateway_hint(settings):
        # With no tokens file an HTTP ingest refuses every POST: the demo's has a gateway
        # token (t66: the printed command, typed, answered only 401s).
        env["CITYBRAIN_API_TOKENS_FILE"] = str(DemoFiles.of(settings).tokens.absolute())
    return lines + _feed_the_demo(settings, argv, ", so it will not see these readings", env)


def path_values(parser: argparse.ArgumentParser, args: argparse.Namespace) -> set[str]:
    """The values ``args`` holds for the file and directory arguments (``FILE``, ``DIR``)
    of the command ``parser`` parsed them for, and of its subcommand's: ``{"a.csv"}``
    for ``replay a.csv --speed 10``."""
    values: set[str] = set()
    current: argparse.ArgumentParser | None = parser
    while current is not None:
        chosen: argparse.ArgumentParser | None = None
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(args, action.dest, None) or "")
            elif action.metavar in ("FILE", "DIR"):
                value = getattr(args, action.dest, None)
                items = value if isinstance(value, list) else [value]
                values |= {item for item in items if isinstance(item, str)}
        current = chosen
    return values


def absolute_argv(argv: Sequence[str], paths: Collection[str]) -> list[str]:
    """``argv`` with each of ``paths`` (``path_values``) that it gives relative, as an
    argument or an ``--option=value``, made absolute from this directory, so a command
    printed from it works typed anywhere; ``-`` (stdin, stdout) stays."""

    def absolute(value: str) -> str:
        if value not in paths or value == "-" or Path(value).is_absolute():
            return value
        return str(Path(value).absolute())

    out = []
    for token in argv:
        option, equals, value = token.partition("=")
        if token.startswith("--") and equals:
            out.append(f"{option}={absolute(value)}")
        else:
            out.append(absolute(token))
    return out


def given_argv(args: argparse.Namespace) -> list[str]:
    """The command's arguments as the user gave them (``main`` keeps them): the base of
    every "run this instead / again" line, so no option the user chose is dropped (t40)."""
    return list(getattr(args, "argv", None) or sys.argv[1:])


# The options of replay and ingest that are about the progress of their own topic
# prefix (replay's resume point), dropped from a command printed for another prefix.
PROGRESS_OPTIONS = ("--skip",)


def _feed_the_demo(
    settings: Settings, argv: Sequence[str], consequence: str, env: dict[str, str] | None = None
) -> list[str]:
    """A note with the command (``argv`` under the demo's prefix, after ``env``'s
    settings too) that feeds the last demo's worker, when it still runs under another
    topic prefix; none otherwise."""
    from citybrain.demo import read_demo_state

    demo = read_demo_state(settings)
    prefix = demo.get("topic_prefix") if demo else None
    if not isinstance(prefix, str) or prefix == settings.topic_prefix:
        return []
    # Options that say how far THIS prefix got are not the demo's: a resumed replay's
    # `--skip 5`, carried over, left out 5 events its worker never had (t46).
    argv, dropped = without_options(argv, PROGRESS_OPTIONS)
    command = command_line(*argv, env={"CITYBRAIN_TOPIC_PREFIX": prefix, **(env or {})})
    why = f", from the first event ({shlex.join(dropped)} is this prefix's)" if dropped else ""
    return [
        f"note: the demo's worker (still running) reads the prefix {prefix!r}, not this "
        f"one{consequence}; to feed it instead{why}: {command}"
    ]


def _row_fault(message: str) -> bool:
    """Whether a reader's ``file:line: reason`` is about a data row (line > 1), the only
    kind of fault --on-error skip gets past (not a header, an empty or unreadable file)."""
    import re

    line = re.search(r":(\d+): ", message)
    return line is not None and int(line.group(1)) > 1 and "no data rows" not in message


def replay_stopped(
    args: argparse.Namespace, done: int, total: int, events: list[Any], refused: int = 0
) -> str:
    """How far an interrupted replay got and the command that sends the rest: ``done``
    events of ``total`` (in the replay's time order, counting any --skip) were handed to
    Kafka, ``refused`` of them refused by it (said before this line)."""
    from streams.events import Reading, format_ts

    if done == 0:
        return (
            f"interrupted before any of the {total:,} events was sent; run it again: "
            f"{command_line(*given_argv(args))}"
        )
    last = events[done - 1]
    what = last.sensor_id if isinstance(last, Reading) else f"report {last.report_id}"
    argv = ["replay", *(str(Path(file).absolute()) for file in args.files)]
    if args.max:
        argv.append("--max")
    elif args.speed != 60.0:
        argv += ["--speed", f"{args.speed:g}"]
    if args.on_error != "stop":
        argv += ["--on-error", args.on_error]
    if args.pack:
        argv += ["--pack", str(args.pack)]
    if args.max_message_bytes != 1_000_000:
        argv += ["--max-message-bytes", str(args.max_message_bytes)]
    resume = command_line(*argv, "--skip", str(done))
    among = (
        f"; Kafka refused {refused:,} of them (above), not sent by the command below either"
        if refused
        else ""
    )
    return (
        f"interrupted after sending {done:,} of {total:,} events (the last: "
        f"{format_ts(last.ts)} {what}{among}); to send the rest: {resume}"
    )


def replay_summary(
    read: int, readings: int, incidents: int, skipped: int, resumed: int = 0, refused: int = 0
) -> str:
    """The replay's last line: rows read = sent + skipped (+ those ``--skip`` left out,
    ``resumed``: the files' rows are all read, whatever --skip says; + those Kafka
    ``refused``, said below it), always."""
    before = f"left out the first {resumed:,} (--skip, sent before), " if resumed else ""
    after = f", Kafka refused {refused:,} (below)" if refused else ""
    return (
        f"read {counted(read, 'row')}: {before}sent {counted(readings, 'reading')} and "
        f"{counted(incidents, 'incident')}, skipped {counted(skipped, 'bad row')}{after}"
    )


def cmd_ingest(args: argparse.Namespace) -> int:
    from citybrain.ingest.service import IngestOptions, run_http, run_mqtt

    logging.basicConfig(
        level=getattr(logging, args.loglevel.upper()),
        format="[%(asctime)s] %(levelname)s %(message)s",
    )
    quiet_kafka_loggers()
    if args.max_pending < args.pack_size:  # before any connection: bad input is status 2
        raise CliError(
            f"--max-pending is {args.max_pending}, below --pack-size {args.pack_size}: "
            "give at least one pack's worth"
        )
    s = _settings()

    def require_services() -> None:
        # After the options, the grid and the listening port are checked (bad input is
        # status 2), before kafka-python and paho start retrying, silently, in the
        # background: where the readings go is said once it is the next thing to do.
        for line in ingest_target(s, given_argv(args)):
            print(line, flush=True)
        _require_kafka(s)
        _require_partition_counts(s, ("readings",))
        if args.action == "mqtt":
            _require_mqtt(s)

    options = IngestOptions(
        pack_size=args.pack_size,
        pack_ms=args.pack_ms,
        max_pending=args.max_pending,
        stats_every=args.stats_every,
    )
    if args.action == "mqtt":
        options.topics = args.topic or []
        options.value_field, options.ts_field = args.value_field, args.ts_field
        options.qos, options.client_id, options.inflight = args.qos, args.client_id, args.inflight
        options.max_payload = args.max_payload
        return run_mqtt(s, options, require_services)
    options.sensor_id_template, options.max_body = args.sensor_id_template, args.max_body
    return run_http(s, options, require_services)


def cmd_playbooks(args: argparse.Namespace) -> int:
    from playbooks.errors import PlaybookError
    from playbooks.loader import load_playbooks, load_routing

    s = _settings()
    if args.action == "check":
        return playbooks_check(args, s)
    # route-test: like amtool config routes test, labels parsed as amtool parses them.
    from playbooks.loader import load_grid
    from playbooks.routing import ALL_LABELS, parse_label

    _need_dir(Path(args.dir or s.playbook_dir), "--dir")
    _need_file(Path(args.routing or s.routing_file), "--routing", kind="YAML", expects=("routing",))
    labels: dict[str, str] = {}
    for pair in args.labels:
        if pair.split("=", 1)[0].strip() == "alertname":
            # Every amtool user types it; citybrain alerts route on kind and source.
            print(
                f"ignored {pair!r}: citybrain alerts carry no alertname label "
                "(they route on kind, source, severity and the grid's labels)"
            )
            continue
        try:
            name, value = parse_label(pair)
        except PlaybookError as exc:
            raise CliError(str(exc)) from None
        if name in labels:
            # An alert carries one value per label (trial 8: the last one won silently).
            raise CliError(
                f"label {name} given twice ({name}={labels[name]!r} and {name}={value!r}): "
                "an alert carries one value of each label"
            )
        labels[name] = value
    router = load_routing(
        Path(args.routing or s.routing_file), load_playbooks(args.dir or s.playbook_dir)
    )
    grid_file = Path(args.grid) if args.grid else s.grid_file
    if args.grid:
        _need_file(grid_file, "--grid", kind="YAML", expects=("grid",))
    grid = load_grid(grid_file)
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
    return 0


def playbooks_check(args: argparse.Namespace, s: Settings) -> int:
    """``playbooks check``: every error of the playbooks, the routing file and the grid in
    one run, file by file in line order (each file is checked whatever the others hold),
    on stderr; status 1 if any, else 0 and one line naming what is valid."""
    from playbooks.errors import PlaybookError
    from playbooks.loader import check_playbooks, load_grid, routing_errors
    from playbooks.routing import label_values

    directory = Path(args.dir or s.playbook_dir)
    routing = Path(args.routing or s.routing_file)
    grid_file = Path(args.grid or s.grid_file)
    _need_dir(directory, "the playbook directory" if args.dir else "CITYBRAIN_PLAYBOOK_DIR")
    _need_file(
        routing,
        "--routing" if args.routing else "CITYBRAIN_ROUTING_FILE",
        kind="YAML",
        expects=("routing",),
    )
    _need_file(
        grid_file,
        "--grid" if args.grid else "CITYBRAIN_GRID_FILE",
        kind="YAML",
        expects=("grid",),
    )
    playbooks, names, errors = check_playbooks(directory)
    grid = None
    try:
        grid = load_grid(grid_file)
    except PlaybookError as exc:
        grid_errors = str(exc).splitlines()
    else:
        grid_errors = []
    try:
        # Routes may name a playbook whose own file has errors: those are reported there.
        _router, route_errors = routing_errors(routing, names, label_values(grid))
    except PlaybookError as exc:
        route_errors = str(exc).splitlines()
    errors += route_errors + grid_errors
    for line in errors:
        print(line, file=sys.stderr)
    if errors:
        return 1
    print(
        f"{counted(len(playbooks), 'playbook')}, {routing.name} and {grid_file.name} are "
        f"valid: {', '.join(playbooks)}"
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


def inconsistent_labels(labels: dict[str, str], grid: Grid) -> str:
    """Why ``labels``, each a value some alert may carry (unknown_label_value), cannot all
    be one alert's, or "": a registered sensor's alert has its ``kind`` and ``grid_cell``
    (the worker dead-letters a reading with others as registration_mismatch); a sensor
    alert (a ``sensor_id``, ``source=sensor`` or a sensor kind) is at a community cell,
    where sensors register, and a report burst (``source=citizen``, ``incident_burst``)
    has neither a sensor nor a sensor kind; ``community``, ``street``, ``district`` and
    ``city`` are the ids of ``grid_cell`` and its ancestors; ``neighbours_agreeing`` is
    a count (0, 1, 2, ...). Trial 8: route-test answered for such label sets."""
    from playbooks.grid import LEVELS, RESERVED_KINDS

    count = labels.get("neighbours_agreeing")
    if count is not None and not (count.isascii() and count.isdigit()):
        return f"label neighbours_agreeing={count!r}: expected a count (0, 1, 2, ...)"
    sensor_id, kind = labels.get("sensor_id"), labels.get("kind")
    sensor = grid.sensors.get(sensor_id or "")
    if sensor is not None:
        for name, registered in (("kind", sensor.kind), ("grid_cell", sensor.cell)):
            if labels.get(name, registered) != registered:
                return (
                    f"label {name}={labels[name]!r}: sensor {sensor_id} is registered as "
                    f"{sensor.kind} in {sensor.cell}, and the worker dead-letters its "
                    f"readings with another {name} (registration_mismatch); give "
                    f"{name}={registered} or leave {name} out"
                )
    citizen = labels.get("source") == "citizen" or kind in RESERVED_KINDS
    sensor_alert = sensor_id is not None or labels.get("source") == "sensor" or kind in grid.kinds
    if citizen and sensor_alert:
        said = ", ".join(f"{n}={labels[n]}" for n in ("source", "kind", "sensor_id") if n in labels)
        return (
            f"labels {said}: a report burst (source=citizen, kind=incident_burst) has no "
            "sensor and no sensor kind, a sensor alert (source=sensor) no burst's"
        )
    cell_id = labels.get("grid_cell")
    cell = grid.cells.get(cell_id or "")
    if cell is not None and sensor_alert and cell.level != "community":
        return (
            f"label grid_cell={cell_id!r}: a {cell.level} cell, but a sensor alert is at its "
            "sensor's cell, and sensors register to community cells"
        )
    if cell is not None:
        path = grid.path(cell.id)
        for level in LEVELS:
            given = labels.get(level)
            if given is not None and path.get(level) != given:
                has = f"is in {level} {path[level]}" if level in path else f"has no {level}"
                return (
                    f"label {level}={given!r}: grid_cell {cell_id} {has} (an alert's {level} "
                    "is its cell's); leave it out to have it filled in"
                )
    return ""


def worker_labels(labels: dict[str, str], grid: Grid) -> tuple[dict[str, str], list[str]]:
    """The labels a worker would add to an alert that has ``labels``, as it adds them
    (streams/ingest.py): from a registered ``sensor_id`` its ``grid_cell`` and ``kind``;
    ``source`` (``sensor`` for a sensor or a sensor kind, ``citizen`` for an
    ``incident_burst`` or a report category); from ``grid_cell`` the ids of the cell and
    its ancestors (community, street, district, city). Returns the labels added (a label
    given is never replaced) and notes on what could not be derived and why."""
    out: dict[str, str] = {}
    notes: list[str] = []

    def add(name: str, value: str) -> None:
        if name not in labels and value:
            out[name] = value

    sensor_id = labels.get("sensor_id", "")
    sensor = grid.sensors.get(sensor_id)
    if sensor is not None:
        add("grid_cell", sensor.cell)
        add("kind", sensor.kind)
    elif sensor_id:
        notes.append(
            f"sensor {sensor_id!r} is not registered in the grid{grid.near_sensor(sensor_id)}: "
            "its cell is not known"
        )
    kind = labels.get("kind") or out.get("kind", "")
    if sensor_id or kind in grid.kinds:
        add("source", "sensor")
    elif kind == "incident_burst" or labels.get("category") or labels.get("department"):
        add("source", "citizen")
    cell = labels.get("grid_cell") or out.get("grid_cell", "")
    if cell in grid.cells:
        for name, value in grid.cell_labels(cell).items():
            add(name, value)
    elif cell:
        notes.append(
            f"grid cell {cell!r} is not in the grid{did_you_mean(cell, grid.cells)}: community, "
            "street, district and city are not known"
        )
    return out, notes


def _need_file(
    path: Path,
    option: str,
    for_a_directory: str = "",
    kind: str = "",
    missing: str = "",
    expects: Collection[str] = (),
) -> None:
    """CliError (status 2) naming ``option`` and ``path`` unless ``path`` is a file this
    command can read, in the one wording of every command and setting for a file it
    reads (``streams.inputs.unreadable``: ``--data 'x.csv': no such file``, ``… is a
    directory, expected a file: …``, ``…: cannot read: Permission denied``, ``… is not a
    CSV file: …``; helper brief t37: ``replay nofile.csv`` said "cannot read: No such
    file or directory" where ``detect`` said "no such file"). ``expects``: the roles of
    the checkout's files it takes (``streams.inputs.mistaken``: ``replay
    datasets/grid.yaml`` is named the grid definition)."""
    from streams.inputs import unreadable

    why = unreadable(path, kind, for_a_directory, missing, expects)
    if why:
        raise CliError(f"{option} {str(path)!r}{why}")


def _need_dir(path: Path, option: str, for_a_file: str = "", missing: str = "") -> None:
    """CliError (status 2) naming ``option`` unless ``path`` is a directory, worded as
    ``_need_file`` words a file (``streams.inputs.not_a_directory``)."""
    from streams.inputs import not_a_directory

    why = not_a_directory(path, for_a_file, missing)
    if why:
        raise CliError(f"{option} {str(path)!r}{why}")


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (after ``..``, symlinks, hard links)."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except (OSError, RuntimeError):  # RuntimeError: Path.resolve on a symbolic link loop
        return False


def check_output(
    option: str,
    out: str | None,
    inputs: Sequence[tuple[str, str | None]] = (),
    stdout_instead: str = "",
    folder_must_exist: bool = True,
    suffixes: Sequence[str] = (),
) -> None:
    """CliError (status 2) before any work when the output path ``out`` of ``option``
    is ``-`` (a file named ``-`` is never what was meant; ``stdout_instead`` says how to
    get the output on stdout, if there is a way) or is the same file as one of
    ``inputs`` (``(option, path)`` pairs; a path may be None, for an option not given),
    which writing would overwrite before or while it is read; or its folder does not
    exist or is a file (a command never creates the folders of a file it writes: a
    mistyped path would leave a tree of them, trial 9). For a file (``folder_must_exist``,
    every caller but ``check_output_dir``), also when ``out`` is a directory (worded as
    ``streams.inputs.unreadable`` words one given for a file to read) or, with
    ``suffixes`` (``(".html", ".json")``), its name ends in none of them: what is
    written follows the name (helper brief t47: ``report --out r.pdf`` wrote HTML into
    it, ``--out /tmp/d`` said "cannot use /tmp/d: Is a directory" after the work)."""
    if out is None:
        return
    if out == "-":
        raise CliError(
            f"{option} is '-': this command writes a file, not standard output; "
            + (stdout_instead or "give a file name")
        )
    if Path(out).is_symlink() and not Path(out).is_dir():
        # Writing would follow it to whatever it names: a link left in a shared folder
        # (/tmp/report.html -> ~/.bashrc) would have the report overwrite its target.
        raise CliError(
            f"{option} {out} is a symbolic link (to {os.readlink(out)!r}): a command writes "
            "only a file it names itself; give the target's path or another file"
        )
    for name, path in inputs:
        if path is not None and path != "-" and _same_file(Path(out), Path(path)):
            raise CliError(
                f"{option} {out} is the same file as {name} {path}: writing it would "
                "overwrite the input; give another file"
            )
    if folder_must_exist and Path(out).is_dir():
        example = Path(out) / f"{option.lstrip('-')}{suffixes[0] if suffixes else ''}"
        raise CliError(
            f"{option} {out!r} is a directory, expected a file: give a file's name, e.g. {example}"
        )
    if suffixes and Path(out).suffix.lower() not in suffixes:
        raise CliError(f"{option} is {out!r}, expected a {' or '.join(suffixes)} file")
    folder = Path(out).parent
    if folder_must_exist and not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise CliError(
            f"{option} {out}: its folder {str(folder)!r} {what}; create the folder first "
            "or give another path"
        )


def check_output_dir(option: str, out: str) -> None:
    """CliError (status 2) naming ``option`` before any work when the output directory
    ``out`` cannot be one: it is ``-``, it is a file, or it is under one. A directory
    that does not exist yet is fine (it is created, with its parents)."""
    check_output(option, out, folder_must_exist=False)
    path = Path(out)
    for here in (path, *path.parents):
        if not here.exists():
            continue
        if not here.is_dir():
            where = "is a file" if here == path else f"is under {str(here)!r}, a file"
            raise CliError(
                f"{option} {out!r} {where}: expected a directory (the command writes "
                "several files into it)"
            )
        return


def write_error(option: str, out: str, exc: OSError) -> CliError:
    """The CliError for an OSError while writing under the output directory ``out``
    that ``option`` gave (a permission, a full disk)."""
    return CliError(f"{option} {out!r}: cannot write {exc.filename or out}: {exc.strerror}")


def _check_output_dir(option: str, out: str, source_option: str, source: Path) -> None:
    """CliError (status 2) when the output directory ``out`` is, or is inside, the
    input directory ``source``: its outputs would overwrite the inputs, or be read as
    inputs the next time."""
    check_output_dir(option, out)
    target = Path(out).resolve()
    if target == source.resolve() or source.resolve() in target.parents:
        raise CliError(
            f"{option} {out} is {'' if target == source.resolve() else 'inside '}"
            f"{source_option} {source}: its scores would overwrite or mix with the inputs; "
            "give a directory outside it"
        )


# The longest --ack-deadline: the longest duration a playbook's own wait_ack deadline may
# have (Go's time.Duration, as Alertmanager's), which the option overrides. A rehearsal's
# clock is float seconds: at 1e308 s it no longer moved by the hours of a unit's shift.
REHEARSAL_MAX_DEADLINE = float((2**63 - 1) // 1_000_000_000)


# Upper bounds of option values that are held in memory (each option says why).
MAX_DEADLETTER_LIMIT = 100_000
MAX_INGEST_PENDING = 1_000_000
MAX_INGEST_BYTES = 64 * 1024 * 1024


def _positive(kind: type[int] | type[float], most: float | None = None, unit: str = "") -> Any:
    """An argparse type: a finite number above 0, and at most ``most`` (in ``unit``, for
    the message) if given (argparse names the option in its message). ``inf`` and
    ``1e308`` passed "above 0": a rehearsal's --ack-deadline of either ran its clock
    past float precision and ended in "unexpected StopIteration" (trial 20)."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not value > 0:  # also refuses nan
            raise argparse.ArgumentTypeError(f"{text!r}: expected more than 0")
        if most is not None and not value <= most:
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected more than 0 and at most {most:,.0f}{unit}"
            )
        if not math.isfinite(value):
            # inf (or 1e400) was taken: `rehearse --ack-deadline inf` ended in "unexpected
            # StopIteration … a bug" (trials 20 and 22), and no option here means "never".
            raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number above 0")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


def _whole(text: str) -> int:
    """An argparse type: a whole number of either sign, whose range the command checks;
    said as --limit's is, not argparse's "invalid int value: 'x'" (trial 25)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _whole_in(low: int, high: int | None = None) -> Any:
    """An argparse type: a whole number in ``low..high`` (no upper bound if None), so
    a value out of range is said as argparse says a malformed one (the command and
    option named, its --help pointed at), not as a bare line the command raised."""

    def parse(text: str) -> int:
        value = _whole(text)
        if value < low or (high is not None and value > high):
            expected = f"{low}..{high}" if high is not None else f"{low:,} or more"
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}")
        return value

    parse.__name__ = "int"
    return parse


def an_id_shown_by(where: str) -> Callable[[str], str]:
    """An argparse type: a run, silence or report id (or a key) that is not empty,
    blank or an example's placeholder, its refusal saying ``where`` to find one (``runs
    list`` or ``runs show``, ``silences list``). An empty one (a script's unset
    variable) went to the API as ``/runs//ack`` and came back ``HTTP 404: Not Found``
    (trial 8); no id is blank, so it is refused here. ``where`` is per id: t68's walk,
    ``silences expire SILENCE_ID`` said "as `list` or `show` shows it", and `silences
    show` is no command."""

    def an_id(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(
                f"{text!r} is {'empty' if not text else 'blank'}: give {where}"
            )
        if _PLACEHOLDER_ID.fullmatch(text):
            # Typed as printed (`runs ack RUN_ID`, t60's walk): the API's 404 did not say why.
            raise argparse.ArgumentTypeError(
                f"{text!r} is the placeholder the examples print: give {where}"
            )
        return text

    an_id.__name__ = "id"  # argparse names the type in some messages
    return an_id


RUN_ID = an_id_shown_by("the id as `runs list` or `runs show` shows it")

# RUN_ID, SILENCE_ID, <run_id>: what help texts and printed examples stand an id by; no
# id citybrain makes (grp-….1, UUIDs, report ids) looks so.
_PLACEHOLDER_ID = re.compile(r"<?[A-Z][A-Z_]*_ID>?|<[a-z_]*id>")


def _matcher_labels(route: Route) -> set[str]:
    """Every label name a matcher of the routing tree compares. Iterative: a tree may
    nest about 1,000 routes deep (trial 23: RecursionError, exit 70)."""
    names: set[str] = set()
    stack = [route]
    while stack:
        node = stack.pop()
        names.update(m.name for m in node.matchers)
        stack.extend(node.routes)
    return names


def _segment(text: str) -> str:
    """An id as one URL path segment: a space, a newline or é was an InvalidURL or
    UnicodeEncodeError traceback, and ``x/../..`` or ``x?y`` addressed another resource."""
    from urllib.parse import quote

    return quote(text, safe="")


def _api(
    args: argparse.Namespace, method: str, path: str, body: dict[str, object] | None = None
) -> Any:
    """The JSON answer of the worker's operator API; CliError when it cannot be had."""
    import urllib.error
    import urllib.request

    if args.token is not None and not args.token.strip():
        # An empty --token (a script's unset variable) must not act under the
        # environment's token, another identity (trial 8).
        raise CliError(
            "--token is empty: give the API token, or leave --token out to use CITYBRAIN_API_TOKEN"
        )
    token = args.token or os.environ.get("CITYBRAIN_API_TOKEN")
    if not token:
        raise CliError(f"no API token: give --token or set CITYBRAIN_API_TOKEN{no_token_hint()}")
    check_bearer(token, "--token" if args.token else "CITYBRAIN_API_TOKEN")
    base = api_base(args.url)
    url = base + "/api/v1" + path
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    # Every state-changing call carries a key, so a retry after a 503 (Kafka did not
    # acknowledge in time, yet the action may still take effect) is applied once.
    given_key = getattr(args, "idempotency_key", None)
    key = given_key or (uuid.uuid4().hex if method != "GET" else None)
    if key:
        headers["Idempotency-Key"] = key
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _no_redirects().open(request, timeout=10) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            where = exc.headers.get("Location", "nowhere")
            raise CliError(
                f"the operator API at {base} answered {method} {path} with HTTP {exc.code}, "
                f"a redirect to {shown_location(where)!r}: not followed (the token would go "
                "with it); give --url the worker's own address",
                EXIT_FAILED,
            ) from None
        reason = api_reason(exc.read().decode(errors="replace"), exc.code)
        hint = {
            401: "; check --token / CITYBRAIN_API_TOKEN",
            403: forbidden_hint(),
            404: not_found_hint(path, reason, args.url),
        }.get(exc.code, "")
        if exc.code == 404:  # asks the API for its ids: only when one was not found
            report = body.get("report_id") if body is not None else None
            if isinstance(report, str) and "(did you mean " in reason:
                hint = answer_again(report, reason, given_argv(args))
            else:
                hint = known_id_hint(base, token, path, given_argv(args)) + hint
        # 503: the worker's Kafka did not acknowledge the action (docs/playbooks.md,
        # Operator API): a service the command needs, exit 3, as when no worker answers.
        if exc.code == 503 and key:
            # The token left out of the printed line, as everywhere (it is no setting).
            argv, secret = without_token(given_argv(args))
            retry = argv if given_key else [*argv, "--idempotency-key", key]
            hint = (
                f"; retry it as the same action (applied once, even if the first one still "
                f"takes effect): {command_line(*retry)}" + (" with your --token" if secret else "")
            )
        # A long id is cut as the API cuts it in its answer (trial 25: a 300-character
        # id filled the line twice over).
        shown = path if len(path) <= 200 else f"{path[:100]}... ({len(path):,} characters)"
        raise CliError(
            f"the operator API at {base} refused {method} {shown}: HTTP {exc.code}: {reason}{hint}",
            EXIT_SERVICE if exc.code == 503 else EXIT_FAILED,
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        why = said(getattr(exc, "reason", exc))
        raise CliError(
            f"cannot reach the operator API at {base} ({why}): {unreachable_hint(args.url)}",
            EXIT_SERVICE,
        ) from None


def api_command(*argv: str, url: str | None = None) -> str:
    """A `runs` or `silences` command line to print: after only the settings it reads
    (API_SETTINGS), with ``--url`` when the command that failed was given one."""
    return command_line(*argv, *(["--url", url] if url else []), only=API_SETTINGS)


def unreachable_hint(url: str | None) -> str:
    """What to do when no worker answers: start one where --url points (its port as
    CITYBRAIN_WORKER_PORT when the host is this machine), not on the default port (trial
    8: ``--url http://127.0.0.1:1`` was told to start a worker on 16066)."""
    import urllib.parse

    stopped = stopped_demo_worker(url)
    if stopped:
        return stopped
    if url is None:
        return (
            f"no worker serves it there; start one (`{make_command('demo')}` in the checkout "
            f"leaves its worker running, or `{command_line('worker')}`) or give --url"
        )
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.hostname in ("127.0.0.1", "localhost", "::1"):
        start = command_line("worker", env={"CITYBRAIN_WORKER_PORT": str(port)})
        return f"no worker serves it there; start one on port {port} (`{start}`) or check --url"
    return f"no worker serves it there; check --url, or that the worker on {parts.hostname} runs"


def stopped_demo_worker(url: str | None) -> str:
    """When the worker --url names (the default one with none) is the last demo's and it
    does not run: the command that starts it again with every setting the demo gave it
    (trial 8: the hint to start a worker left out its topic prefix, app id, tokens file
    and ack deadline), after where its log is when it stopped without `make stack-down`
    (crashed or killed), or its prefix when it is down (its demo interrupted, or `stack
    down` stopped it); else ""."""
    from citybrain.demo import DemoFiles, demo_worker, restart_advice, running_demo

    settings = _settings()
    state, doc = demo_worker(settings)
    demo_url = (doc or {}).get("worker_url") or f"http://127.0.0.1:{settings.worker_port}"
    demo = running_demo(settings)
    if demo is not None and state != "running" and url in (None, demo_url):
        # t60: `runs list` typed while a demo started said "no worker serves it there;
        # start one (`make demo` …)", which refuses while this demo runs.
        return (
            f"the running demo (pid {demo.pid}, topic prefix {demo.prefix or '?'}) is still "
            f"starting its worker (log: {DemoFiles.of(settings).log}); run this again once "
            "the demo prints its progress lines"
        )
    if state == "running" or doc is None or (url is not None and url.rstrip("/") != demo_url):
        return ""
    if state == "none":
        # Its demo was interrupted, or `stack down` stopped it: not "start one (`make
        # demo` …)", which deletes this demo's topics (t46).
        return (
            f"the last demo's worker (prefix {doc.get('topic_prefix')}) is not running; start "
            f"it again, as the demo ran it, with its runs: {restart_advice(settings)}"
        )
    log = doc.get("worker_log") or "its log"
    return (
        f"the demo's worker has stopped (crashed or killed: see {log}); start it again, as "
        f"the demo ran it: {restart_advice(settings)}"
    )


def no_token_hint() -> str:
    """Where a token is, for a command given none: the demo's operator token file when a
    demo made one (t40: the message said only "`make demo` prints a demo token" while a
    demo ran, not the file the 403 messages name), else how to get one."""
    from citybrain.demo import DemoFiles

    token = DemoFiles.of(_settings()).token
    if token.exists():
        return (
            f"; the demo's operator token is in {token}: "
            f'`export CITYBRAIN_API_TOKEN="$(cat {shlex.quote(str(token))})"` (its '
            f"coordinator token is in {DemoFiles.of(_settings()).coordinator_token})"
        )
    return (
        f" (`{make_command('demo')}` in the checkout prints a demo token; docs/playbooks.md "
        "says how to configure your own)"
    )


def forbidden_hint() -> str:
    """A 403 means the token's role may not do this: point to the demo's coordinator
    token when a demo made one (its operator token may not expire silences)."""
    from citybrain.demo import DemoFiles

    coordinator = DemoFiles.of(_settings()).coordinator_token
    if coordinator.exists():
        # Once, shell-quoted (t60: the path twice made the line 330 characters, and a
        # run directory with a space broke the `$(cat …)` typed as printed).
        quoted = shlex.quote(str(coordinator))
        return f'; give the demo\'s coordinator token: --token "$(cat {quoted})"'

    return "; ask for a token with that role (docs/playbooks.md, the operator API: roles)"


def known_id_hint(base: str, token: str, path: str, argv: Sequence[str]) -> str:
    """For a 404 on a run or silence id: ``; did you mean 'grp-….1'? (…/citybrain runs
    show grp-….1)``, the closest id the worker lists (``closest``; t40: an id with its ``.1``
    left off got only "check the id with `runs list`") and the command as given
    (``argv``, every option kept) with that id, or "" when none is close or the list
    cannot be had (the 404's own hint still says what to do)."""
    import urllib.parse
    import urllib.request

    from streams.errors import closest

    parts = path.split("?")[0].split("/")
    if len(parts) < 3 or parts[1] not in ("runs", "silences") or not parts[2]:
        return ""
    listing, given = parts[1], urllib.parse.unquote(parts[2])
    key = "run_id" if listing == "runs" else "id"
    headers = {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(f"{base}/api/v1/{listing}", headers=headers)
    try:
        with _no_redirects().open(request, timeout=5) as resp:
            items = json.load(resp).get(listing, [])
        ids = [str(item[key]) for item in items if isinstance(item, dict) and item.get(key)]
    except Exception:  # only a suggestion: the 404 is the answer
        return ""
    near = closest(given, ids)
    if near is None or near == given:
        return ""
    if given not in argv:
        return f"; did you mean {str(near)!r}?"
    words, secret = without_token(argv)
    again = [str(near) if word == given else word for word in words]
    with_token = " with your --token" if secret else ""
    return (
        f"; did you mean {str(near)!r}? (`{command_line(*again, only=API_SETTINGS)}`{with_token})"
    )


def answer_again(report: str, reason: str, argv: Sequence[str]) -> str:
    """For the API's 404 on a report id a run does not cover, whose ``reason`` names the
    closest one it covers (``… (did you mean 'nyc311-61279245'?)``): the command as given
    (``argv``) with that id, `` (`…/citybrain runs answer … --report nyc311-61279245`)``,
    or "" when ``report`` is not one word of ``argv`` (``--report=…``)."""
    import ast

    near = reason.rsplit("(did you mean ", 1)[1].removesuffix("?)")
    try:
        near = ast.literal_eval(near)
    except (ValueError, SyntaxError):
        return ""
    if report not in argv or not isinstance(near, str):
        return ""
    words, secret = without_token(argv)
    again = [near if word == report else word for word in words]
    with_token = " with your --token" if secret else ""
    return f": `{command_line(*again, only=API_SETTINGS)}`{with_token}"


def without_token(argv: Sequence[str]) -> tuple[list[str], bool]:
    """``argv`` without its ``--token VALUE`` / ``--token=VALUE`` (a command printed for
    the operator to type again never shows the token: docs/control-room.md), and whether
    it had one (the message then says "with your --token")."""
    kept, dropped = without_options(argv, ("--token",))
    return kept, bool(dropped)


def without_options(argv: Sequence[str], names: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` without the options ``names`` (``--skip``) and their values, given as
    ``--skip 5``, ``--skip=5`` or an abbreviation argparse takes (``--sk 5``), and the
    words left out (``["--skip", "5"]``). Every option of ``names`` takes a value."""
    kept: list[str] = []
    dropped: list[str] = []
    words = iter(argv)
    for word in words:
        name, equals, _ = word.partition("=")
        if len(name) > 2 and name.startswith("--") and any(n.startswith(name) for n in names):
            dropped.append(word)
            if not equals:
                value = next(words, None)
                dropped += [value] if value is not None else []
        else:
            kept.append(word)
    return kept, dropped


def not_found_hint(path: str, reason: str, url: str | None = None) -> str:
    """What a 404 from the API path ``path`` tells the operator to check: a report id
    the run does not cover is listed by `runs show RUN_ID` (`runs list` shows none);
    a run or silence id by its `list`."""
    if path.startswith("/runs/") and path.endswith("/answer") and "covers no report" in reason:
        if reason.endswith("covers no citizen report at all"):
            return ""  # nothing `runs show` would list (t48)
        run_id = path.split("/")[2]
        return f"; see the run's report ids with `{api_command('runs', 'show', run_id, url=url)}`"
    listing = "silences" if path.startswith("/silences") else "runs"
    if path.split("?")[0] in ("/runs", "/silences"):
        # A list has no id to check: the API itself is not where --url points.
        return (
            "; no operator API there: --url takes the worker's base URL "
            "(scheme, host and port, e.g. http://127.0.0.1:16066)"
        )
    return f"; check the id with `{api_command(listing, 'list', url=url)}`"


def _no_redirects() -> Any:
    """A urllib opener that follows no redirect (a 3xx is an HTTPError): urllib's own
    copied the Authorization header to wherever a redirect pointed, another host too
    (trial 29: a 302 from --url sent the operator's token to the host it named)."""
    import urllib.request

    class Refuse(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # urllib then raises the 3xx as an HTTPError

    return urllib.request.build_opener(Refuse)


def shown_location(location: str) -> str:
    """A redirect's target as a message shows it: a password as ***, at most 200
    characters, control characters escaped."""
    from citybrain.text import cell
    from playbooks.schema import shown_url

    shown = cell(shown_url(location))
    return shown if len(shown) <= 200 else shown[:200] + "..."


def check_bearer(token: str, where: str) -> None:
    """CliError (status 2) when ``token`` (given as ``where``: an option or a setting)
    has a character no ``Authorization: Bearer`` header can carry; the message names
    the character and its position, never the token. Such a character was a
    UnicodeEncodeError or an "Illegal header value b'Bearer <the token>'" traceback
    ("a bug", exit 70; trial 29 for Grafana's token)."""
    encoded = token.encode("utf-8", "surrogateescape")
    if _BEARER.fullmatch(encoded):
        return
    bad = _bearer_fault(encoded)  # (every byte before it is ASCII: a character index)
    char = token[bad]
    # (A byte that is not UTF-8 arrives as a surrogate escape: named as the byte.)
    shown = f"byte 0x{ord(char) - 0xDC00:02x}" if "\udc80" <= char <= "\udcff" else repr(char)
    raise CliError(
        f"{where} has {shown} at position {bad + 1}: a bearer token is ASCII "
        "letters, digits and - . _ ~ + / (then = padding), RFC 6750"
    )


def check_url(option: str, url: str | None) -> str | None:
    """``url`` as given (None stays None), or CliError (status 2) naming ``option`` when
    it is not an http:// or https:// URL with a host: ``localhost:16766`` would
    otherwise be tried as a URL of scheme "localhost" and reported as unreachable."""
    import urllib.parse

    from playbooks.schema import shown_url

    if url is None:
        return None
    shown = shown_url(url)  # a password in it is never echoed (trial 29)
    example = "expected an http:// or https:// URL with a host, e.g. http://127.0.0.1:16066"
    if any(c.isspace() for c in url):
        raise CliError(f"{option} is {shown!r}: {example}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError(
            f"{option} is {shown!r}: the http:// scheme is missing, e.g. http://{shown}"
            if "://" not in url
            else f"{option} is {shown!r}: {example}"
        )
    try:
        parts.port  # noqa: B018 -- raises ValueError for a port outside 0-65535
    except ValueError:
        raise CliError(f"{option} is {shown!r}: the port is not a number from 1 to 65535") from None
    if parts.username is not None:
        # The services take a token (--token), not a user and password in the URL; the
        # URL is shown in every message (trial 29: "cannot reach … at http://ops:pw@…").
        raise CliError(
            f"{option} is {shown!r}: expected no user or password in the URL; give the "
            "token with --token"
        )
    return url.rstrip("/")


def api_base(url: str | None) -> str:
    """The operator API's base URL from ``--url`` (checked by ``check_url``), the local
    worker's by default. A URL ending in the API's own ``/api/v1`` (the path the README
    names) is taken as the worker's: the commands add ``/api/v1`` themselves."""
    base = check_url("--url", url) or f"http://127.0.0.1:{_settings().worker_port}"
    return base.removesuffix("/api/v1")


def api_reason(body: str, status: int) -> str:
    """The readable part of an error answer: the API's ``{"error": ...}`` text, else the
    body's first line of text with any HTML tags removed (a proxy's or aiohttp's page),
    at most 200 characters (the API's own text: 2,000); the HTTP reason phrase when the
    body says nothing."""
    import http
    import re

    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        text = doc["error"]
    elif doc is not None:  # JSON without a reason in it: the status's phrase says more
        text = ""
    else:
        lines = [ln.strip() for ln in re.sub(r"<[^>]*>", "\n", body).splitlines()]
        text = next((ln for ln in lines if ln), "")
    text = " ".join(text.split())
    if not text:
        try:
            text = http.HTTPStatus(status).phrase
        except ValueError:
            text = "no reason given"
    # The API's own reason is shown whole: its advice ("relay the reporter's answer as a
    # new report, or answer run <new> …") comes last (trial 5: cut at 200 characters). A
    # page from something else (a proxy) is cut.
    limit = 2000 if isinstance(doc, dict) and isinstance(doc.get("error"), str) else 200
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2))


def _local(ts: Any) -> str:
    """An epoch time as local time with its zone, the way an operator's clock reads. A
    value no date can show (a silence stored with epoch milliseconds, the year 58,888;
    infinite; not a number) is shown raw: one stored value already on a changelog must
    not break every listing (trial 10: `silences list` exited 70 for good)."""
    if ts is None:
        return "-"
    try:
        at = datetime.fromtimestamp(ts).astimezone()
        return f"{at:%Y-%m-%d %H:%M:%S} {zone(at)}"
    except (ValueError, OverflowError, OSError, TypeError):
        return f"{ts!r} (not a date)"


def _zone() -> str:
    """The local zone as list headers give it: ``CET, UTC+0100``."""
    now = datetime.now().astimezone()
    name, offset = zone(now), f"{now:UTC%z}"
    return offset if name == offset else f"{name}, {offset}"


def _ago(seconds: float) -> str:
    """``text.duration``, the one formatter of a span (a 100-year silence was "in
    36500.0 d")."""
    return duration(seconds)


def _next_deadline(run: dict[str, Any], now: float, short: bool = False) -> str:
    """The nearer of the run's step deadline and its SLA deadline, with how far off
    (``short``: only which and how far off, "step in 90 s")."""
    candidates = [
        (at, what)
        for at, what in ((run.get("deadline_at"), "step"), (run.get("sla_deadline_at"), "SLA"))
        if at is not None
    ]
    if not candidates or run.get("status") in ("resolved", "cancelled", "failed", "expired"):
        return "-"
    at, what = min(candidates)
    delta = at - now
    when = f"in {_ago(delta)}" if delta >= 0 else f"{_ago(-delta)} overdue"
    return f"{what} {when}" if short else f"{_local(at)} ({what}, {when})"


def _cell_names() -> dict[str, str]:
    """Cell id -> name from the local grid file; empty when it cannot be read (the table
    then shows ids only: the names are a help, not the answer)."""
    from playbooks.loader import load_grid

    try:
        grid = load_grid(_settings().grid_file)
    except Exception:
        return {}
    return {cell_id: cell.name for cell_id, cell in grid.cells.items()}


def _cell(run: dict[str, Any], names: dict[str, str]) -> str:
    name = names.get(run.get("grid_cell", ""))
    return f"{run.get('grid_cell', '')} ({name})" if name else str(run.get("grid_cell", ""))


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
        return int(columns)
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
                _status(r),
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
        ("step", run.get("step") or _no_step(run)),
        ("kind", run.get("kind")),
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
    return "\n".join(lines)


def _times(n: int) -> str:
    """How often a reporter's answer reopened the run: ``no``, ``once``, ``3 times``."""
    return "no" if n == 0 else "once" if n == 1 else f"{n} times"


def _status(run: dict[str, Any]) -> str:
    """The run's status, saying when a reporter's answer reopened it (``open, reopened
    once``): open again after being resolved, which ``open`` alone does not tell."""
    status = str(run.get("status", ""))
    reopened = int(run.get("reopened") or 0)
    return f"{status}, reopened {_times(reopened)}" if reopened else status


def _no_step(run: dict[str, Any]) -> str:
    """The step line of a run between steps: a reopened run that is open waits to be
    resolved again, not for a playbook step."""
    if run.get("reopened") and run.get("status") == "open":
        return (
            f"- (reopened: waiting to be resolved again at {run.get('level')} level; the "
            "playbook's steps do not run again)"
        )
    return "-"


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
    """One operator action of ``run.actions``: when, what, who, and the note if any."""
    note = action.get("note") or ""
    return f"{_local(action.get('at'))}  {action.get('action')} by {action.get('by')}" + (
        f": {note}" if note else ""
    )


_ALREADY = {
    "ack": "acknowledged",
    "resolve": "resolved",
    "cancel": "cancelled",
    "approve": "approved",
    "reject": "rejected",
}


def already_message(run_id: str, already: dict[str, Any], now: float) -> str:
    """What a repeated action says: it had already happened, by whom and when, so a
    repeat never reads like a first success."""
    at = already.get("at")
    when = f" at {_local(at)} ({_ago(now - at)} ago)" if isinstance(at, int | float) else ""
    note = f' with note "{already["note"]}"' if already.get("note") else ""
    done = _ALREADY.get(str(already.get("action")), str(already.get("action")))
    return cell(
        f"unchanged: run {run_id} was already {done} by {already.get('by') or 'someone'}"
        f"{when}{note}"
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


def cmd_runs(args: argparse.Namespace) -> int:
    import time

    if args.action in ("resolve", "cancel") and not (args.note or "").strip():
        # The API refuses it (400); an empty --note (a script's unset variable) is
        # known here, as an empty id is (trial 8).
        raise CliError(
            f"--note is empty: {args.action} needs a note saying why, for the audit trail"
        )

    if args.action == "list":
        doc = _api(args, "GET", "/runs" + (f"?status={args.status}" if args.status else ""))
    elif args.action == "show":
        doc = _api(args, "GET", f"/runs/{_segment(args.run_id)}")
    elif args.action == "answer":
        body = {"report_id": args.report, "satisfied": args.satisfied, "comment": args.comment}
        doc = _api(args, "POST", f"/runs/{_segment(args.run_id)}/answer", body)
    else:
        doc = _api(
            args, "POST", f"/runs/{_segment(args.run_id)}/{args.action}", {"note": args.note or ""}
        )
    if args.json:
        _print_json(doc)
        return EXIT_OK
    now, names = time.time(), _cell_names()
    if args.action == "list":
        runs = doc.get("runs", [])
        print(f"{counted(len(runs), 'run')}; times in local time ({_zone()})")
        hint = superseded_hint(runs, args.url)
        if hint:
            print(hint)
        if runs:
            print(runs_table(runs, names, now, table_width(args.wide)))
    elif args.action == "show":
        if doc.get("superseded_by"):
            print(superseded_note(doc, now))
        print(run_details(doc["run"], names, now))
    elif "already" in doc:
        print(already_message(args.run_id, doc["already"], now))
    else:
        satisfied = getattr(args, "satisfied", True)
        print(accepted_message(args.action, args.run_id, doc, satisfied, args.url))
    return EXIT_OK


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


def _check_matchers(texts: list[str]) -> None:
    """Each ``--matcher`` in Alertmanager's syntax, read as the silence API reads it
    (parse_silence_matchers); CliError naming the first bad one."""
    from playbooks.errors import PlaybookError
    from playbooks.routing import parse_silence_matchers

    for text in texts:
        try:
            parse_silence_matchers(text)
        except PlaybookError as exc:
            raise CliError(f"--matcher: {exc}") from None


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


def silence_warnings(texts: list[str], grid: Grid) -> list[str]:
    """One ``warning:`` line per ``--matcher`` (already checked by _check_matchers) that
    tests a label for a value no alert can carry in ``grid``, by the definition `playbooks
    check` holds route matchers to: ``kind="road_ice"`` silences nothing,
    ``severity!="urgent"`` everything. Alertmanager accepts such a silence (it cannot know
    which values will come), and so does citybrain; the line is for a typo."""
    from playbooks.routing import impossible_value, label_values, parse_matchers

    values = label_values(grid)
    lines = []
    for text in texts:
        for matcher in parse_matchers(text):
            why = impossible_value(matcher, values)
            if why:
                lines.append(f"warning: --matcher {text!r}: {why}")
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
            " ".join(str(m) for m in x.get("matchers", [])),
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
    matchers = " ".join(str(m) for m in silence.get("matchers", []))
    how = f"been expired by {already['by']}" if already.get("by") else "ended"
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


def cmd_silences(args: argparse.Namespace) -> int:
    import time

    warnings: list[str] = []
    if args.action == "add":
        silence_duration(args.duration)
        _check_matchers(args.matcher)
        if not args.reason.strip():
            raise CliError("--reason is empty: say why, for the audit trail")
        warnings = _grid_silence_warnings(args.matcher)
    if args.action == "list":
        doc = _api(args, "GET", "/silences")
    elif args.action == "expire":
        doc = _api(args, "DELETE", f"/silences/{_segment(args.silence_id)}")
    else:
        doc = _api(
            args,
            "POST",
            "/silences",
            {"matchers": args.matcher, "duration": args.duration, "reason": args.reason},
        )
    # After the add succeeded: the warning qualifies a silence that exists.
    for line in warnings:
        print(f"citybrain: {line}", file=sys.stderr)  # as every command's warning (t48)
    if args.json:
        _print_json(doc)
        return EXIT_OK
    now = time.time()
    if args.action == "list":
        silences = doc.get("silences", [])
        active = sum(_silence_state(x, now) == "active" for x in silences)
        print(
            f"{counted(len(silences), 'silence')}, {active} active; times in local time ({_zone()})"
        )
        if silences:
            print(silences_table(silences, now))
        return EXIT_OK
    silence = doc.get("silence", {})
    matchers = " ".join(str(m) for m in silence.get("matchers", []))
    if args.action == "add":
        print(
            f"silence {silence.get('id')} added by {silence.get('author')}: {matchers}, "
            f"until {_ends(silence, now)}"
        )
        line = firing_matched_line(doc, str(silence.get("id")), args.url)
        if line:
            print(line)
    elif "already" in doc:
        print(already_expired_message(args.silence_id, silence, doc["already"], now))
    else:
        print(f"silence {args.silence_id} expired: {matchers}, ended {_ends(silence, now)}")
    return EXIT_OK


def chosen_prefix(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    """The topic prefix a reading command (``deadletters``, ``campaign report``,
    ``report``) reads, and a note to print first ("" for none): --prefix, else
    CITYBRAIN_TOPIC_PREFIX; when neither was given and the last demo's worker still runs,
    the demo's (it writes under its own ``demo-…`` prefix). CliError for an empty
    --prefix."""
    from citybrain.demo import read_demo_state

    if args.prefix is not None:
        if not args.prefix.strip():
            raise CliError("--prefix is empty: give a topic prefix, e.g. citybrain")
        return args.prefix, ""
    if "topic_prefix" in settings.model_fields_set:
        return settings.topic_prefix, ""
    demo = read_demo_state(settings)
    prefix = demo.get("topic_prefix") if demo else None
    if isinstance(prefix, str) and prefix:
        return prefix, f"(the running demo's prefix {prefix}; --prefix reads another)"
    return settings.topic_prefix, ""


def named_prefix(args: argparse.Namespace, settings: Settings, prefix: str, note: str) -> str:
    """The prefix ``chosen_prefix`` gave, named as the user gave it: the option, the
    setting, the running demo's or the default (trial 17: "--prefix 'citybrain'" with
    no --prefix typed)."""
    if args.prefix is not None:
        return f"--prefix {prefix!r}"
    if "topic_prefix" in settings.model_fields_set:
        return f"CITYBRAIN_TOPIC_PREFIX={prefix}"
    if note:
        return f"the running demo's prefix {prefix!r} (no --prefix given)"
    return f"the default prefix {prefix!r} (no --prefix given)"


def prefixes_there(what: str, found: Sequence[str], prefix: str) -> str:
    """``prefixes there: a, b, … (the latest 8) (did you mean 'demo-20261203121245'?)``:
    the last 8 of the topic prefixes ``found`` (oldest first) and the one closest to the
    ``prefix`` asked for, when one is (a newcomer's prefix with a digit left off got the
    list alone)."""
    latest = " (the latest 8)" if len(found) > 8 else ""
    return f"{what}: {', '.join(found[-8:])}{latest}{did_you_mean(prefix, found)}"


def cmd_deadletters(args: argparse.Namespace) -> int:
    from citybrain.deadletters import dead_letter_topics

    settings = _settings()
    prefix, note = chosen_prefix(args, settings)
    given = named_prefix(args, settings, prefix, note)
    settings = settings.model_copy(update={"topic_prefix": prefix})
    topic = settings.topic("deadletter")
    _require_kafka(settings)
    # A prefix with no such topic is a bad command line (exit 2), as `report` and
    # `campaign report` refuse one: it was exit 1 here, the answer "no".
    if topic not in dead_letter_topics(settings):
        others = [t.removesuffix(".deadletter") for t in dead_letter_topics(settings)]
        there = (
            prefixes_there("prefixes with one", others, prefix)
            if others
            else "no dead-letter topic is there at all"
        )
        raise CliError(
            f"{given}: Kafka at {settings.kafka_bootstrap} has no topic {topic} "
            f"(a worker creates it as it starts); {there}"
        )
    if note and not args.json:
        print(note, file=sys.stderr)
    if not args.follow:
        return _show_dead_letters(args, settings, topic)
    # Ctrl-C (or SIGTERM) is how a follow ends, whenever it comes (also while the latest
    # are read, before any new one: that was exit 130): status 0.
    with contextlib.suppress(KeyboardInterrupt):
        _show_dead_letters(args, settings, topic)
    return EXIT_OK


def _show_dead_letters(args: argparse.Namespace, settings: Settings, topic: str) -> int:
    """``deadletters``' table or JSON lines: the latest ``--limit``, then with
    ``--follow`` each new one until interrupted (``KeyboardInterrupt`` propagates)."""
    from citybrain.deadletters import COLUMNS, Reader, json_line, row, table_line, widths

    with Reader(settings, topic) as reader:
        latest = reader.latest(args.limit)
        if args.json:
            for letter in latest:
                print(json_line(letter, topic), flush=True)
        else:
            more = " (the latest, --limit)" if len(latest) == args.limit else ""
            print(
                f"{topic}: {counted(len(latest), 'dead letter')}{more}; times in local time "
                f"({_zone()}); --json shows each whole"
                + ("; new ones follow as they come (Ctrl-C stops)" if args.follow else "")
            )
        rows = [row(letter) for letter in latest]
        columns = widths(rows)
        if rows and not args.json:
            print(table_line(COLUMNS, columns))
            for cells in rows:
                print(table_line(cells, columns), flush=True)
        if not args.follow:
            return EXIT_OK
        header = bool(rows)
        for letter in reader.new():
            if args.json:
                print(json_line(letter, topic), flush=True)
                continue
            if not header:
                print(table_line(COLUMNS, columns), flush=True)
                header = True
            # Columns as wide as the first rows' (a longer cell widens its line only).
            print(table_line(row(letter), columns), flush=True)
    return EXIT_OK


_BOMS = ((b"\xef\xbb\xbf", "UTF-8"), (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))


def cmd_hash_token(args: argparse.Namespace) -> int:
    from streams.auth import hash_token

    binary = getattr(sys.stdin, "buffer", None)  # None for a text stream (a test's)
    # At most one byte more than a token may have: `< /dev/zero`, or a file with no
    # newline, grew memory without end looking for the line's end (trial 21).
    limit = MAX_TOKEN_BYTES + 2  # the token, a CR LF
    raw = binary.readline(limit) if binary is not None else sys.stdin.readline(limit).encode()
    line = raw.strip()
    if len(raw.rstrip(b"\r\n")) > MAX_TOKEN_BYTES:
        raise CliError(
            f"the token's first line is longer than {MAX_TOKEN_BYTES:,} bytes (read no further): "
            "no server takes a bearer token that long in one header; is standard input "
            "the token file?"
        )
    if not line:
        raise CliError(
            f"no token on standard input: `{command_line('hash-token', only=())} < token.txt`"
        )
    # A token that is no RFC 6750 bearer token could never be sent in the Authorization
    # header; bytes that are not UTF-8 ended in a UnicodeEncodeError traceback before.
    if not _BEARER.fullmatch(line):
        bad = _bearer_fault(line)
        # A file saved with a byte order mark (PowerShell's Set-Content, Notepad) starts
        # so: the token itself may be fine, and `$(cat token.txt)` would send the mark too.
        mark = next((name for bom, name in _BOMS if line.startswith(bom)), "")
        said = f" (a {mark} byte order mark: save the file as plain ASCII)" if mark else ""
        raise CliError(
            f"the token has byte 0x{line[bad]:02x} at position {bad + 1}{said}: a bearer "
            "token is ASCII letters, digits and - . _ ~ + / (then = padding), RFC 6750; "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'` makes one"
        )
    print(hash_token(line.decode("ascii")))
    return 0


_BEARER = re.compile(rb"[A-Za-z0-9\-._~+/]+=*")
MAX_TOKEN_BYTES = 4096
_NOT_BEARER = re.compile(rb"[^A-Za-z0-9\-._~+/=]")
_AFTER_PADDING = re.compile(rb"=[^=]")


def _bearer_fault(data: bytes) -> int:
    """Index of the first byte that keeps ``data`` (not a ``_BEARER`` token) from being
    one: a byte outside the alphabet, else the first byte after ``=`` padding; 0 for an
    empty or all-padding token."""
    outside = _NOT_BEARER.search(data)
    if outside:
        return outside.start()
    padded = _AFTER_PADDING.search(data)
    return padded.start() + 1 if padded else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from citybrain.demo import DEMO_DATA, KNOWN_EVENTS, KnownEvent, load_expected, run_demo

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
    for path in data:
        _need_feed(path, "--data")
    # The built-in expected events belong to the built-in data: on a user's own files
    # they would only ever be "missed".
    expected: tuple[KnownEvent, ...] = KNOWN_EVENTS if not args.data else ()
    if args.expect:
        _need_file(Path(args.expect), "--expect", kind="YAML", expects=("expect",))
        try:
            expected = load_expected(Path(args.expect))
        except (OSError, ValueError) as exc:
            message = str(exc)  # load_expected's own messages name the option and file
            raise CliError(
                message if message.startswith("--expect") else f"--expect {args.expect}: {message}"
            ) from None
    if args.grid:
        _need_file(Path(args.grid), "--grid", kind="YAML", expects=("grid",))
        os.environ["CITYBRAIN_GRID_FILE"] = str(Path(args.grid).resolve())
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
        raise CliError(
            f"the demo raised no alert on {counted(len(data), 'file')}: nothing for the playbooks "
            "to do (the summary says how many readings were processed)",
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
    for path in files:
        _need_feed(path, "--data")
    settings = _settings()
    # The prefix chosen as `deadletters` and `campaign report` choose it: the running
    # demo's by default, said on stderr (t40: it was "required: --prefix").
    prefix, note = chosen_prefix(args, settings)
    given = named_prefix(args, settings, prefix, note)
    settings = settings.model_copy(update={"topic_prefix": prefix})
    if note:
        print(note, file=sys.stderr)
    _require_kafka(settings)
    roles = ("readings", "incidents", "alerts")
    _need_prefix(settings, "--prefix", roles, roles, given)
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
        print(
            f"citybrain: warning: --data {name}: the topics of prefix {prefix!r} hold none "
            f"of its {counted(n, 'event')}: it was not replayed under this prefix and the "
            "report leaves it out (no counts, no known events from it)",
            file=sys.stderr,
        )
    for name, n, held in replayed.partly():
        print(
            f"citybrain: warning: --data {name}: the topics hold {held:,} of its "
            f"{counted(n, 'event')} (the rest were not sent, or the worker dead-lettered "
            "them): the report counts only those",
            file=sys.stderr,
        )
    if not replayed.worker_ran:
        print(f"citybrain: warning: {no_alerts_note(settings)}", file=sys.stderr)
    elsewhere = replayed.elsewhere
    if elsewhere:
        print(
            f"citybrain: warning: {counted(elsewhere, 'alert')} under prefix {prefix!r} "
            f"{agreeing(elsewhere, 'is', 'are')} on sensors none of the --data files holds: "
            "give the files that replay sent",
            file=sys.stderr,
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


def _need_prefix(
    settings: Settings,
    option: str,
    roles: tuple[str, ...] = ("readings", "incidents", "alerts"),
    named: tuple[str, ...] = ("alerts",),
    given: str = "",
) -> None:
    """CliError (status 2) unless the topics of ``roles`` (those the command reads) under
    ``settings``' prefix hold messages, any of them; naming the prefix as ``given``
    (default: ``option`` and the prefix), the topics looked for (``named``) and the
    prefixes there are."""
    from citybrain.demo import messages_in, read_demo_state, topic_prefixes

    prefix = settings.topic_prefix
    given = given or f"{option} {prefix!r}"
    # Events in any of the topics read are events (trial 6: a prefix whose ingest had
    # written readings, read by no worker yet, has no alerts topic and was "no events").
    if messages_in(settings, roles):
        return
    found = topic_prefixes(settings)
    if prefix in found:
        # The other prefixes, as a prefix with no topics gets them (t51: the default
        # prefix, empty, advised "give the prefix of a replay that ran" naming none).
        others = [p for p in found if p != prefix]
        there = f"; {prefixes_there('other prefixes there', others, prefix)}" if others else ""
        raise CliError(
            f"{given}: no events under it: its topics "
            f"({', '.join(settings.topic(r) for r in roles)}) on Kafka at "
            f"{settings.kafka_bootstrap} are empty; replay to it first, or give the prefix "
            f"of a replay that ran (the demo prints its own){there}"
        )
    demo = read_demo_state(settings)
    latest = f"; the running demo's is {demo['topic_prefix']}" if demo else ""
    there = (
        prefixes_there("prefixes there", found, prefix)
        if found
        else "no citybrain topics are there at all"
    )
    raise CliError(
        f"{given}: no events under it: Kafka at {settings.kafka_bootstrap} has no "
        f"topic {' or '.join(settings.topic(r) for r in named)}; {there}{latest}"
    )


# Days a date option takes by name, any case, as UTC days from today's (helper brief
# t47: the README's `--from TODAY --to TOMORROW`, typed as it stands, was refused).
DAY_WORDS = {"yesterday": -1, "today": 0, "tomorrow": 1}
DATE_FORM = "expected a date like 2024-05-26, or today, yesterday or tomorrow (UTC days)"


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

    def parse(chunk: str, line: int) -> object:
        try:
            # An integer past the 4,300 digits int() converts was a ValueError (exit 70).
            return json.loads(chunk, parse_int=json_int)
        except json.JSONDecodeError as exc:
            raise CliError(
                f"{path}:{line + exc.lineno - 1}: not a JSON record ({exc.msg}): {expected}"
            ) from None
        except RecursionError:
            raise CliError(f"{path}:{line}: not a JSON record: nested too deeply") from None

    text = text.removeprefix("\ufeff")
    if text.lstrip().startswith("["):
        loaded = parse(text, 1)
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
        if not row.strip():
            continue
        doc = parse(row, number)
        if not isinstance(doc, dict):
            raise CliError(f"{path}:{number}: the record is {shown(doc)}, expected an object")
        _record_schema(doc, f"{path}:{number}")
        records.append(doc)
        lines.append(f"{path}:{number}")
    return records, lines


RECORD_SCHEMAS = ("step/1", "audit/1")


def _record_schema(doc: dict[str, object], where: str) -> None:
    """CliError unless ``doc`` is a step or audit record (its ``schema``): any other
    object ({"a": 1}) was read as a record about no run and left out silently."""
    import reprlib

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
        out.write_text(render_html(report, title), encoding="utf-8")
    elif out.suffix.lower() == ".json":
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
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
    if args.input:
        _need_file(Path(args.input), "--input", kind="JSON lines", expects=("export",))
    if args.grid:
        _need_file(Path(args.grid), "--grid", kind="YAML", expects=("grid",))
    settings = _settings()
    given = ""
    if args.input:
        records, places = _read_records(Path(args.input))
    else:
        from citybrain.demo import read_topic, topic_records

        # The prefix chosen as `deadletters` chooses it, the running demo's by default
        # (t36: the default prefix was read, unsaid, while a demo ran).
        prefix, note = chosen_prefix(args, settings)
        given = named_prefix(args, settings, prefix, note)
        settings = settings.model_copy(update={"topic_prefix": prefix})
        if note:
            print(note, file=sys.stderr)
        _require_kafka(settings)
        roles = ("steps", "audit")
        _need_prefix(settings, "--prefix", roles, roles, given)
        messages = [m for role in roles for m in read_topic(settings, settings.topic(role))]
        records, places = topic_records(messages)
        if args.export:
            Path(args.export).write_text(
                "".join(json.dumps(r) + "\n" for r in records), encoding="utf-8"
            )
            # On stderr: stdout may be the report's JSON (--json).
            print(f"{counted(len(records), 'record')} exported to {args.export}", file=sys.stderr)
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
        source = args.input or f"the topics of {given}"
        raise CliError(
            empty_period(report, args.start, args.end, source, len(records), bool(args.input)),
            EXIT_FAILED,
        )
    unplaced = report["unplaced_cells"]
    if unplaced:
        listed = ", ".join(f"{c} ({counted(n, 'run')})" for c, n in list(unplaced.items())[:8])
        more = f" and {len(unplaced) - 8} more" if len(unplaced) > 8 else ""
        print(
            f"citybrain: warning: the grid {grid_file} lacks the cells of "
            f"{counted(sum(unplaced.values()), 'run')}: {listed}{more}; they are counted only "
            'at the city level, as city "?" (give --grid the grid the worker ran with)',
            file=sys.stderr,
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
            fitted.append(DepartmentClassifier.from_training_file())
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
        print(f"citybrain: warning: --incidents {line}", file=sys.stderr)
    if len(found.duplicates) > 10:
        print(
            f"citybrain: warning: --incidents {path}: {len(found.duplicates) - 10} more "
            "duplicate report ids left out",
            file=sys.stderr,
        )
    for name, lines in found.unknown_departments.items():
        near = nearest(name, known, cutoff=0.5)
        hint = f" (did you mean {near!r}?)" if near else ""
        lines = sorted(lines)
        where = ", ".join(str(n) for n in lines[:5]) + (" …" if len(lines) > 5 else "")
        print(
            f"citybrain: warning: --incidents {path}: department {name!r} (line(s) {where}) "
            f"is none the units profile or the classifier knows{hint}; its reports are "
            "rehearsed with the units profile's default pool. Known: " + ", ".join(sorted(known)),
            file=sys.stderr,
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
    _need_file(units_path, "--units", kind="YAML", expects=("units",))
    _need_file(Path(args.incidents), "--incidents", kind="CSV", expects=("feed",))
    _need_file(Path(args.playbook), "--playbook", kind="YAML", expects=("playbook",))
    if args.grid:
        _need_file(Path(args.grid), "--grid", kind="YAML", expects=("grid",))

    try:
        doc = load_yaml(utf8_text(units_path, "--units"))
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
                raise CliError(f"--units {units_path}: {profile}:{exc.lineno}: {exc.msg}") from None
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

        raise CliError(f"--units {yaml_error(units_path, exc)}") from None
    except (OSError, AttributeError) as exc:
        raise CliError(f"--units {units_path}: {exc}") from None
    except RehearsalError as exc:
        raise CliError(f"--units {units_path}: {exc}") from None
    grid = load_grid(Path(args.grid) if args.grid else _settings().grid_file)
    settings = _settings()
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
    for deadline in args.ack_deadline or [None]:
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
                "report": report,
            }
        )
    _print_comparison(versions)
    print(pools_note(incidents, units))
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() == ".json":
            out.write_text(json.dumps({"versions": versions}, indent=2) + "\n", encoding="utf-8")
        elif out.suffix.lower() == ".html":
            out.write_text(
                "\n".join(
                    render_html(
                        v["report"], f"rehearsal, {_ack_head(v['ack_deadline'])}", page=i == 0
                    )
                    for i, v in enumerate(versions)
                ),
                encoding="utf-8",
            )
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


def _detector(name: str) -> Detector:
    """The named detector with its default parameters (argparse has checked the name;
    CliError for a caller that did not)."""
    from detectors import DETECTORS

    if name not in DETECTORS:
        raise CliError(
            f"--detector is {name!r}, expected one of {', '.join(sorted(DETECTORS))}"
            f"{did_you_mean(name, DETECTORS)}"
        )
    return DETECTORS[name]()


def cmd_detect(args: argparse.Namespace) -> int:
    from citybrain.detect import (
        DetectInputError,
        detect_dir,
        detect_file,
        input_files,
        warmup_rows,
    )

    prototype = _detector(args.detector)
    # Rows are counted at the threshold the stream would alert at with this detector.
    settings = _settings()
    threshold = settings.alert_threshold(args.detector)
    skipped: list[str] = []
    skipped_files: list[str] = []
    written: list[Path] = []
    on_bad_row = skipped.append if args.on_error == "skip" else None
    on_bad_file = skipped_files.append if args.on_error == "skip" else None

    def warn(message: str) -> None:
        print(f"citybrain: warning: {message}", file=sys.stderr)

    try:
        if args.input_dir:
            if not args.output_dir:
                raise usage_error("detect", "--input-dir needs --output-dir (where the scores go)")
            source = Path(args.input_dir)
            _need_dir(source, "--input-dir", "give --input FILE --output FILE for one file")
            _check_output_dir("--output-dir", args.output_dir, "--input-dir", source)
            try:
                files = input_files(source)
            except DetectInputError as exc:
                raise CliError(f"--input-dir {str(source)!r}: {exc}") from None
            if not files:
                raise CliError(f"--input-dir {str(source)!r}: no .csv or .csv.gz files under it")
            scored = detect_dir(
                source,
                Path(args.output_dir),
                prototype,
                on_bad_row,
                warn,
                written,
                threshold,
                args.detector,
                on_bad_file,
            )
        else:
            if args.input and not args.output:
                raise usage_error(
                    "detect", "--input needs --output (where the scores go: a .csv file, or -)"
                )
            if args.output and not args.input:
                raise usage_error("detect", "--output needs --input (the CSV to score)")
            if args.output_dir:
                raise usage_error(
                    "detect", "--output-dir needs --input-dir (the folder of CSVs to score)"
                )
            if not args.input:
                raise usage_error(
                    "detect", "give --input FILE --output FILE, or --input-dir DIR --output-dir DIR"
                )
            if args.input == "-":
                raise CliError(
                    "--input is '-': detect reads a file, not standard input (it checks "
                    "every row before scoring any); save it to a file and give that"
                )
            source = Path(args.input)
            _need_file(
                source,
                "--input",
                f"to score every CSV under it give --input-dir {source} --output-dir DIR",
                kind="CSV",
                # A feed gets its own message later: the replay command that streams it.
                expects=("series", "feed"),
            )
            if args.output != "-":
                check_output("--output", args.output, [("--input", args.input)], suffixes=(".csv",))
            # `--output -`: the scores on stdout, so the summary goes to stderr.
            to_stdout = args.output == "-"
            scored = detect_file(
                source,
                sys.stdout if to_stdout else Path(args.output),
                prototype,
                on_bad_row,
                warn,
                threshold,
                args.detector,
            )
    except DetectInputError as exc:
        # A bad input file is bad input (exit 2), like a bad command line.
        if args.input_dir:
            total = len(files)
            done = (
                f"; {len(written):,} of {counted(total, 'file')} "
                f"{agreeing(len(written), 'was', 'were')} scored into {args.output_dir} "
                f"before it (the last: {written[-1].name})"
                if written
                else f"; none of the {total:,} files was scored"
            )
        else:
            done = "" if args.output == "-" else f"; nothing was written to {args.output}"
        # In a folder a file that cannot be scored at all is skipped whole as well.
        skip = ", or give --on-error skip" if _row_fault(str(exc)) or args.input_dir else ""
        raise CliError(f"{exc}{done}: fix the file{skip}") from None
    except KeyboardInterrupt:
        raise CliError(_detect_interrupted(args, written), EXIT_INTERRUPTED) from None
    finally:
        for row in skipped:
            print(f"skipped {row}", file=sys.stderr)
        for whole in skipped_files:
            print(f"skipped the whole file: {whole}", file=sys.stderr)
    if args.input_dir and len(skipped_files) == len(files):
        # As for one file whose every row was bad (exit 2, "no data rows"): t68's walk,
        # `detect --input-dir datasets --on-error skip` scored nothing and said done (0).
        raise CliError(
            f"--input-dir {str(source)!r}: none of its {counted(len(files), 'file')} could be "
            f"scored (each skipped whole, above); nothing was written to {args.output_dir}: "
            "give files of timestamp,value rows"
        )
    summary = detect_summary(
        args.detector,
        scored,
        len(skipped),
        warmup_rows(prototype),
        threshold,
        settings.threshold_is_set,
        settings.detector,
    )
    if skipped_files:
        summary += (
            f"; skipped {counted(len(skipped_files), 'file')} that could not be scored at all "
            "(listed above; no output for them)"
        )
    print(summary, file=sys.stderr if args.output == "-" and not args.input_dir else sys.stdout)
    return 0


def _detect_interrupted(args: argparse.Namespace, written: list[Path]) -> str:
    """What an interrupted ``detect`` leaves (new-user walk, t17: it said only
    "interrupted", over a truncated output file): each output file is written whole or
    not at all, so the message names those finished and says the rest are as they were."""
    if not args.input_dir:
        if args.output == "-":
            return "interrupted: the scores written to stdout so far are only the first rows"
        return (
            f"interrupted: nothing was written to {args.output} (it is as it was before); "
            "run the command again to score the file"
        )
    if not written:
        return (
            f"interrupted: no file was scored into {args.output_dir} (every output there "
            "is as it was before); run the command again to score them"
        )
    return (
        f"interrupted: {counted(len(written), 'file')} "
        f"{agreeing(len(written), 'was', 'were')} scored into {args.output_dir} "
        f"(the last: {written[-1].name}); the one being scored and those after it were not "
        "written; run the command again to score them"
    )


def detect_summary(
    detector: str,
    scored: Scored,
    skipped: int,
    warmup: int | None,
    threshold: float = DEFAULT_THRESHOLD,
    threshold_given: bool = False,
    stream_detector: str | None = None,
) -> str:
    """detect's last line: rows read = scored + skipped; the warm-up (declared, or as
    seen when the detector declares none) and how many rows reached ``threshold``, the
    one the stream alerts at with this detector, saying whose it is: the detector's own,
    or CITYBRAIN_SCORE_THRESHOLD's (``threshold_given``), which the stream applies to its
    own detector (``stream_detector``, CITYBRAIN_DETECTOR) when that is another one."""
    from detectors import DEFAULT_DETECTOR, OWN_THRESHOLDS, default_threshold

    runs = f"; the stream runs {stream_detector}" if stream_detector not in (None, detector) else ""
    if not threshold_given and (detector in OWN_THRESHOLDS or detector == DEFAULT_DETECTOR):
        at = "would alert at running it" if runs else "alerts at with it"
        whose = f"({detector}'s threshold, the one the stream {at}{runs})"
    elif not threshold_given:
        # The shared default is calibrated on tail's probabilities; this detector's
        # scores have a scale of their own (a flat series can score 0.8 throughout).
        whose = (
            f"({DEFAULT_DETECTOR}'s calibrated threshold, the default of every detector "
            f"without its own; {detector}'s scores have their own scale, so this is no "
            f"alert rate for it{runs})"
        )
    elif stream_detector in (None, detector):
        whose = "(CITYBRAIN_SCORE_THRESHOLD, the stream's alert threshold)"
    else:
        whose = (
            f"(CITYBRAIN_SCORE_THRESHOLD, which the stream applies to its detector "
            f"{stream_detector}; {detector}'s own threshold is {default_threshold(detector):g})"
        )
    from citybrain.detect import _MEASURED, ALTERNATIVE, EXTREME_SPREADS, rows_to_reach

    if warmup is not None:
        learning = f"the first {warmup:,} rows of each series are warm-up, scored 0"
        # The warm-up is not the whole story: tail caps a score by how little it has seen,
        # so a reading right after it cannot reach the threshold (trial 9's 6x spike at
        # row 45 scored 0.197). Measured, not declared (citybrain.detect.rows_to_reach).
        need = rows_to_reach(detector, threshold) if detector in _MEASURED else None
        if need is not None and need > warmup:
            learning += (
                f", and before row {need + 1:,} only a reading more than "
                f"{EXTREME_SPREADS:g} standard deviations out reaches {threshold:g} (--detector "
                f"{ALTERNATIVE} can sooner)"
            )
    else:
        zeros = counted(scored.leading_zeros, "row")
        learning = f"{detector} declares no fixed warm-up; " + (
            f"here the first {zeros} scored 0"
            if scored.series == 1
            else f"here at most the first {zeros} of a series scored 0"
        )
    order = scored.order
    unordered = [
        f"{counted(order.repeated, 'row')} at the previous row's time (the stream drops "
        "these as duplicates)"
        if order.repeated
        else "",
        f"{counted(order.earlier, 'row')} before it by up to an hour (the stream "
        "dead-letters these, out_of_order)"
        if order.earlier
        else "",
    ]
    said = "; ".join(u for u in unordered if u)
    return (
        f"read {counted(scored.rows + skipped, 'row')}: scored {scored.rows:,} with {detector}, "
        f"skipped {counted(skipped, 'bad row')}; {learning}; "
        + (f"scored though the stream would not: {said}; " if said else "")
        + f"{counted(scored.flagged, 'row')} scored at or above {threshold:g} {whose}"
    )


def cmd_bench_nab(args: argparse.Namespace) -> int:
    from citybrain.detect import DetectInputError
    from citybrain.nab import load_corpus, report

    prototype = _detector(args.detector)
    data = Path(args.data)
    if (data / "data").is_dir():  # the NAB root was given: its data/ and labels/
        data = data / "data"
    labels = Path(args.labels) if args.labels else data.parent / "labels" / "combined_windows.json"
    layout = "NAB's layout: data/<category>/<file>.csv and labels/combined_windows.json"
    # A file as --data was taken for a root whose labels were missing (trial 20).
    _need_dir(data, "--data", f"give NAB's root or its data/ directory ({layout})", f"({layout})")
    _need_file(labels, "--labels", kind="JSON", missing=f"(expected {layout})", expects=("labels",))
    try:
        cases = load_corpus(data, labels, lambda t, v: prototype.clone().score_many(v, t))
    except DetectInputError as exc:
        raise CliError(str(exc)) from None
    # The score at the fixed threshold the stream alerts at with this detector, beside
    # the optimised one; as `detect` counts (trial 20: only tail got one, though the
    # help promised it for every detector).
    from detectors import default_threshold

    threshold = args.threshold
    if threshold is None:
        threshold = default_threshold(args.detector)
    result = {"detector": args.detector, "threshold": threshold, **report(cases, threshold)}
    print(json.dumps(result, indent=2))
    return 0


def cmd_dashboards(args: argparse.Namespace) -> int:
    from dashboards.generate import generate

    if args.action == "generate":
        check_output_dir("--out", args.out)
        try:
            written = generate(Path(args.out))
        except OSError as exc:
            raise write_error("--out", args.out, exc) from None
        for path in written:
            print(f"wrote {written_path(path)}")
        return 0
    from dashboards.push import DashboardPusher, PushError

    check_url("--url", args.url)
    check_url("--prometheus-url", args.prometheus_url)
    token = args.token or os.environ.get("CITYBRAIN_GRAFANA_TOKEN")
    if not token:
        raise CliError("no Grafana token: give --token or set CITYBRAIN_GRAFANA_TOKEN")
    check_bearer(token, "--token" if args.token else "CITYBRAIN_GRAFANA_TOKEN")
    _need_dir(Path(args.generated), "--generated")
    prometheus = args.prometheus_url or f"http://127.0.0.1:{_settings().prometheus_port}"
    if not re.fullmatch(r"[1-9][0-9]*(ms|s|m|h)", args.scrape_interval):
        raise CliError(
            f"--scrape-interval is {args.scrape_interval!r}, expected a Prometheus duration "
            "such as 5s, 15s or 1m (the interval that Prometheus scrapes the workers at)"
        )
    try:
        pusher = DashboardPusher(args.url, token, prometheus, scrape_interval=args.scrape_interval)
        report = pusher.push(Path(args.generated))
    except PushError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    except Exception as exc:
        refused = _connection_error(exc)
        if refused is None:
            raise
        raise CliError(
            f"cannot reach Grafana at {args.url} ({said(refused)}): check --url and that Grafana "
            "runs",
            EXIT_SERVICE,
        ) from None
    for verb, items in (
        ("created", report.created),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
    ):
        for item in items:
            print(f"{verb:9} {item}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from citybrain.adapters import build

    _need_dir(Path(args.shared), "--shared")
    check_output_dir("--out", args.out)
    check_output("--out", args.out, [("--shared", args.shared)], folder_must_exist=False)
    try:
        built = build(Path(args.shared), Path(args.out))
    except OSError as exc:
        if exc.filename is None or not str(exc.filename).startswith(args.out):
            raise  # reading --shared: the boundary names the file
        raise write_error("--out", args.out, exc) from None
    for name, rows in built.items():
        print(f"{name}: {rows} rows")
    return 0


DESCRIPTION = """\
citybrain: a streaming city-operations brain. Sensor readings and citizen reports flow
through Kafka into stream workers that detect anomalies, raise alerts, route them to
response playbooks and escalate when nobody acts; Prometheus and Grafana show it all.

Start with 'make demo' (or 'citybrain demo'); 'citybrain COMMAND --help' describes each
command. Settings come from CITYBRAIN_* environment variables (README, Configuration).
"""

EPILOG = """\
exit statuses:
  0    done
  1    the command ran and the answer is no (checks failed, the API refused, no alert,
       no run in the period)
  2    a bad command line, input file or setting (the message names it)
  3    a service the command needs did not answer or could not start, or is busy
  70   an unexpected error, a bug (CITYBRAIN_DEBUG=1 prints the traceback)
  130  interrupted (Ctrl-C or SIGTERM)
  141  the output was closed early (| head)
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written; every option's default shown, unless it has
    none worth showing or the help already says it. Help text starts at column 30, so
    every command name (``playbooks``, ``hash-token``, ``dashboards``) and most options
    share a line with their description instead of wrapping above it."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 30,
        width: int | None = None,
    ) -> None:
        super().__init__(prog, indent_increment, max_help_position, width)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        # argparse measures the command names of a subcommand list without the extra
        # indent it prints them with, so the longest ones wrapped above their help.
        if action.help is not argparse.SUPPRESS and isinstance(action, argparse._SubParsersAction):
            names = [len(sub.dest) for sub in action._get_subactions()]
            if names:
                needed = max(names) + self._current_indent + self._indent_increment
                self._action_max_length = max(self._action_max_length, needed)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, "", argparse.SUPPRESS)
            # A flag's default is its absence: "--unsatisfied (default: True)" read as
            # if the flag were on (it is the dest shared with --satisfied that is True).
            or isinstance(action, argparse._StoreConstAction | argparse.BooleanOptionalAction)
            or action.nargs in ("?", "*", "+")
            or not action.option_strings
        ):
            return text
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse's parser, its usage errors as the one ``citybrain:`` line every other
    error is (README): ``citybrain: ingest mqtt: argument --qos: invalid choice: 2 (choose
    from 0, 1); see `citybrain ingest mqtt --help` ``, status 2, not the usage block. The
    hint is typed as it works in this shell (``cli_command``: the script's path when
    ``citybrain`` is not on the PATH; a new-user walk typed the bare name and got "command
    not found").
    Subcommands' parsers are of this class too (add_subparsers takes the parent's)."""

    # The arguments this parser was given, to name an unknown option first (trial 9).
    _given: list[str] | None = None
    # Options that cannot be given together: (option, option, why), see refuse_together.
    conflicts: list[tuple[str, str, str]]
    # Options allowed only with one value of an argument: (option, dest, value, why).
    only: list[tuple[str, str, str, Callable[[], str]]]

    def refuse_together(self, first: str, second: str, why: str) -> None:
        """Refuse ``first`` and ``second`` (long options of this parser) given together,
        as argparse refuses a mutually exclusive group's (``argument --json: not allowed
        with argument --out (why)``, status 2), where a group cannot say it: an option
        in two pairs (``--out`` with ``--json`` and with ``--wide``), or a reason to give
        (helper brief t47: ``campaign report --out c3.html --json`` ignored --json, and
        ``--input F --prefix P`` ran without saying which it used)."""
        for option in (first, second):
            if option not in self._option_string_actions:
                raise ValueError(f"{self.prog} has no option {option}")
        self.conflicts = [*getattr(self, "conflicts", []), (first, second, why)]

    def only_with(self, option: str, dest: str, value: str, why: Callable[[], str]) -> None:
        """Refuse ``option`` (a long option of this parser) given when the argument
        ``dest`` is not ``value``, where it would go unused (t51: ``stack up --wipe``, a
        fresh start meant, ran on the old data without a word): ``argument --wipe: not
        allowed with ACTION 'up' (why)``, status 2; ``why`` is built only then (it may
        print a command, which reads the run directory)."""
        if option not in self._option_string_actions:
            raise ValueError(f"{self.prog} has no option {option}")
        self.only = [*getattr(self, "only", []), (option, dest, value, why)]

    def _refuse_conflicts(self, namespace: argparse.Namespace) -> None:
        """``error`` on the first pair of ``conflicts`` both given, or the first option
        of ``only`` given without its argument's value: an option is given when its value
        is not its default (a flag set, a value typed)."""
        for first, second, why in getattr(self, "conflicts", []):
            a, b = self._option_string_actions[first], self._option_string_actions[second]
            if all(getattr(namespace, x.dest, x.default) != x.default for x in (a, b)):
                self.error(f"argument {second}: not allowed with argument {first} ({why})")
        for option, dest, value, why in getattr(self, "only", []):
            action = self._option_string_actions[option]
            given = getattr(namespace, dest, None)
            if getattr(namespace, action.dest, action.default) != action.default and (
                given != value
            ):
                named = next((a.metavar or a.dest for a in self._actions if a.dest == dest), dest)
                self.error(f"argument {option}: not allowed with {named} {given!r} ({why()})")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """argparse's check of a value against ``choices`` (a subcommand's name too), but
        a misspelt one is answered with the closest choice, as Python 3.14's
        ``suggest_on_error`` does: ``argument COMMAND: invalid choice: 'stak' (did you
        mean 'stack'?)``; with none close, every choice is listed, as before. Raises
        ``argparse.ArgumentError``, which ``error`` prints as the one ``citybrain:`` line."""
        choices = action.choices
        if choices is None or value in choices:
            return
        near = closest(value, choices)
        if near is None:
            listed = ", ".join(map(repr, choices))
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r} (choose from {listed})"
            )
        raise argparse.ArgumentError(action, f"invalid choice: {value!r} (did you mean {near!r}?)")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[Any, list[str]]:
        """argparse's, but a subcommand's parser reports what it does not know itself,
        with its own help (trial 9: ``replay x.csv --bogus`` pointed at ``citybrain
        --help``, as argparse leaves extras to the top parser)."""
        self._given = list(sys.argv[1:] if args is None else args)
        for flag, value in self._flag_values():
            if _FLAG_VALUE.fullmatch(value):
                # `replay --max 50 x.csv` read 50 as a FILE: "FILE '50': no such file".
                self.error(
                    f"argument {flag}: takes no value, but {value!r} follows it "
                    f"({flag} is on when given: drop {value!r})"
                )
        namespace, extras = super().parse_known_args(args, namespace)
        if extras and self.prog != "citybrain":
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        if namespace is not None:
            self._refuse_conflicts(namespace)
        return namespace, extras

    def _unknown_options(self) -> list[str]:
        """The options among this parser's arguments that it does not know, as argparse
        would read them (up to ``--``; ``-`` and negative numbers are values)."""
        unknown: list[str] = []
        for arg in self._given or []:
            if arg == "--":
                break
            try:
                parsed = self._parse_optional(arg)
            except (argparse.ArgumentError, SystemExit):
                continue  # an ambiguous abbreviation: argparse says so itself
            if parsed is not None and parsed[0] is None:
                unknown.append(arg)
        return unknown

    def _commands(self) -> str:
        """This parser's subcommands, one a line with its description, as --help lists
        them, and the line that says how to learn more of one."""
        lines = []
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    lines.append(f"  {choice.dest:<12} {choice.help or ''}".rstrip())
        typed = command_line(*self.prog.split()[1:], "COMMAND", "--help", only=())
        return "\n".join([*lines, f"`{typed}` describes each"]) + "\n"

    def _option_hint(self, unknown: list[str]) -> str:
        """`` (did you mean --status?)`` for the unknown options near one of this
        parser's (``--stauts``, ``--stauts=open``), or ""."""
        # Compared without their dashes, which every option shares (t60's walk: `silences
        # add --for 1h` was asked "did you mean --url?", two letters of five alike).
        known = {o[2:]: o for o in self._option_string_actions if o.startswith("--")}
        pairs = []
        for option in unknown:
            name = option.split("=", 1)[0]
            bare = closest(name.lstrip("-"), list(known))
            near = known[str(bare)] if bare is not None else None
            if near is not None:
                pairs.append(str(near) if len(unknown) == 1 else f"{near} for {name}")
        return f" (did you mean {', '.join(pairs)}?)" if pairs else ""

    def _flag_values(self) -> list[tuple[str, str]]:
        """Each option of this parser that takes no value (``--max``, ``--json``) with the
        word typed right after it when that word is no option (up to ``--``)."""
        pairs = []
        given = [*(self._given or []), ""]
        for arg, after in itertools.pairwise(given):
            if arg == "--":
                break
            action = self._option_string_actions.get(arg)
            if (
                action is not None
                and action.nargs == 0
                and after
                and not after.startswith("-")
                and not isinstance(action, argparse._HelpAction | argparse._VersionAction)
            ):
                pairs.append((arg, after))
        return pairs

    def _file_option_hint(self, message: str) -> str:
        """`` (a file is given with --input: --input one.csv)`` when a file was typed
        where this command takes none but has one option for an input file (a newcomer's
        ``detect one.csv``), or ""."""
        inputs = [
            action.option_strings[-1]
            for action in self._actions
            if action.option_strings and action.metavar == "FILE" and "out" not in action.dest
        ]
        unrecognized = message.removeprefix("unrecognized arguments:")
        files = [
            word
            for word in self._given or []
            if word in unrecognized and not word.startswith("-") and Path(word).is_file()
        ]
        if len(inputs) != 1 or not files:
            return ""
        return f" (a file is given with {inputs[0]}: {inputs[0]} {shlex.quote(files[0])})"

    def _flag_value_hint(self) -> str:
        """`` (--max takes no value)`` when a value was typed after an option that takes
        none (t60: ``replay --max 50``, ``runs list --json 5`` said only ``unrecognized
        arguments: 50``, as if the 50 were the mistake, not the reading of --max), or ""."""
        flags = list(dict.fromkeys(flag for flag, _ in self._flag_values()))
        if not flags:
            return ""
        takes = "takes" if len(flags) == 1 else "take"
        return f" ({' and '.join(flags)} {takes} no value: it is on when given)"

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("citybrain").strip()
        where = f"{command}: " if command else ""
        if message.endswith("required: COMMAND") and not self._unknown_options():
            # `citybrain` alone (t40: "required: COMMAND" only): the commands, one a line,
            # as --help lists them.
            self.exit(EXIT_USAGE, f"citybrain: {where}give a command:\n{self._commands()}")
        if message.startswith("the following arguments are required"):
            # argparse checks what is missing before what is unknown: `replay --bogus`
            # said only that FILE is required. The unknown option is the likelier slip.
            unknown = self._unknown_options()
            if unknown:
                message = (
                    f"unrecognized arguments: {' '.join(unknown)}{self._option_hint(unknown)} "
                    f"(and {message})"
                )
        elif message.startswith("unrecognized arguments"):
            message += (
                self._option_hint(self._unknown_options())
                + self._flag_value_hint()
                + self._file_option_hint(message)
            )
        elif explicit := re.fullmatch(r"argument (\S+): ignored explicit argument (.*)", message):
            # argparse's words for `--max=50`, as if the 50 had been left out on purpose.
            flag, value = explicit.groups()
            message = (
                f"argument {flag}: takes no value, but {value} is given to it "
                f"({flag} is on when given: drop ={value.strip(chr(39))})"
            )
        # The hint is a command to type, so it is typed as it works in this shell (the
        # script's path when `citybrain` is not on the PATH), as every other hint is.
        typed = command_line(*command.split(), "--help", only=())
        self.exit(EXIT_USAGE, f"citybrain: {where}{message}; see `{typed}`\n")


# A value typed after an option that takes none, read by argparse as the next positional
# argument (a FILE) otherwise: a number or a yes/no word, never a file or an id a command
# takes.
_FLAG_VALUE = re.compile(r"[+-]?(\d[\d_,]*\.?\d*|\.\d+)|(?i:yes|no|true|false|on|off)")


def _version() -> str:
    """citybrain's installed version (pyproject.toml), or "unknown" outside an install."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("citybrain")
    except PackageNotFoundError:
        return "unknown (not installed: make install)"


def build_parser() -> argparse.ArgumentParser:
    from detectors import DETECTORS
    from playbooks.machine import RUN_LIST_STATUSES

    parser: argparse.ArgumentParser = Parser(
        prog="citybrain",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    # A new user's first try after --help (trial 20: "unrecognized arguments: --version").
    parser.add_argument(
        "--version", action="version", version=f"citybrain {_version()}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(parent: argparse._SubParsersAction[Any], name: str, text: str) -> Parser:
        made = parent.add_parser(
            name,
            help=text,
            description=text[0].upper() + text[1:] + ".",
            epilog=EPILOG,
            formatter_class=HelpFormatter,
        )
        assert isinstance(made, Parser)  # add_subparsers makes its parent's class
        return made

    def detector_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--detector",
            default=DEFAULT_DETECTOR,
            choices=sorted(DETECTORS),
            metavar="NAME",
            help=f"the detector to score with, one of {', '.join(sorted(DETECTORS))} "
            f"(default {DEFAULT_DETECTOR})",
        )

    p = command(sub, "stack", "start, stop or check the local Kafka, Prometheus and Mosquitto")
    p.add_argument(
        "action",
        choices=["up", "down", "status", "restart-worker"],
        metavar="ACTION",  # as every other command's; "required: action" before (trial 20)
        help="up, down, status or restart-worker; up: start them (installing what is "
        "missing); down: stop a running demo, the demo's worker and them; status: say what "
        "runs; restart-worker: start the last demo's worker again as the demo ran it (status "
        "shows it, down stops it)",
    )
    p.add_argument("--wipe", action="store_true", help="with down: also delete Kafka's data")
    p.only_with(
        "--wipe",
        "action",
        "down",
        lambda: f"only `{command_line('stack', 'down', '--wipe')}` deletes Kafka's data",
    )
    p.set_defaults(func=cmd_stack)

    p = command(sub, "worker", "run a stream-processing worker (faust) until Ctrl-C")
    p.add_argument(
        "--loglevel",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much the worker logs",
    )
    p.set_defaults(func=cmd_worker)

    p = command(sub, "replay", "publish canonical CSVs to Kafka in event-time order")
    p.add_argument("files", nargs="+", metavar="FILE", help="canonical reading or incident CSVs")
    speed = p.add_mutually_exclusive_group()
    speed.add_argument(
        "--speed",
        type=_positive(float),
        default=60.0,
        metavar="N",
        help="replay at N times real time",
    )
    speed.add_argument("--max", action="store_true", help="as fast as Kafka takes them")
    p.add_argument(
        "--on-error",
        choices=["stop", "skip"],
        default="stop",
        help="whether a bad row stops the replay or is skipped and reported",
    )
    p.add_argument(
        "--pack",
        type=_whole_in(1, MAX_PACK_READINGS),
        metavar="N",
        help="send readings as readings/1 packs of up to N (1..10000), as an edge gateway "
        "does; a pack is also split below --max-message-bytes",
    )
    p.add_argument(
        "--skip",
        type=_whole_in(0),
        default=0,
        metavar="N",
        help="leave out the first N events of the time-ordered replay: resumes one that "
        "was interrupted (it says N)",
    )
    p.add_argument(
        "--max-message-bytes",
        type=_whole_in(1024, 2**31 - 1),  # Kafka's sizes are 32-bit
        default=1_000_000,
        metavar="B",
        help="largest message to send (default 1000000, under Kafka's 1 MiB default); a row "
        "whose message is larger is a bad row",
    )
    p.set_defaults(func=cmd_replay)

    p = command(sub, "ingest", "take MQTT or HTTP (citybrain's schema, NGSI-v2) into Kafka")
    isub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (
        (
            "mqtt",
            "subscribe to the MQTT broker; readings to Kafka as packs; /metrics on "
            "CITYBRAIN_INGEST_METRICS_PORT",
        ),
        (
            "http",
            "serve POST /ingest/v1/readings and /ingest/v1/ngsi, and /metrics, on "
            "CITYBRAIN_INGEST_HTTP_PORT",
        ),
    ):
        i = command(isub, name, text)
        i.add_argument(
            "--pack-size",
            # The worker's pack limit (pack_too_large beyond it), as replay's --pack.
            type=_whole_in(1, MAX_PACK_READINGS),
            default=1000,
            metavar="N",
            help="readings per pack at most",
        )
        i.add_argument(
            "--pack-ms",
            type=_positive(float, 60_000, " milliseconds"),  # ingest.service.MAX_PACK_MS
            default=5.0,
            metavar="MS",
            help="send a pack every MS ms (at most 60000)",
        )
        i.add_argument(
            "--max-pending",
            # Each waiting reading is held in memory: 10**20 was taken, and back-pressure,
            # the bound on the ingest's memory, never came.
            type=_positive(int, MAX_INGEST_PENDING, " readings"),
            default=50_000,
            metavar="N",
            help="readings waiting for Kafka at most; then intake waits (back-pressure); "
            f"at most {MAX_INGEST_PENDING:,}",
        )
        i.add_argument(
            "--loglevel",
            default="info",
            choices=["debug", "info", "warning", "error"],
            help="how much the ingest logs",
        )
        i.add_argument(
            "--stats-every",
            # 1e300 was taken: no stats line, ever.
            type=_positive(float, 3600, " seconds"),
            default=10.0,
            metavar="S",
            help="seconds between stats (at most 3600)",
        )
        i.set_defaults(func=cmd_ingest)
        if name == "mqtt":
            i.add_argument(
                "--topic",
                action="append",
                metavar="PATTERN",
                help="topic pattern with {sensor_id}, {kind}, {grid_cell} or other {name} "
                "levels; repeatable (default city/{district}/{sensor_id}/{kind})",
            )
            i.add_argument(
                "--value-field", default="value", metavar="FIELD", help="JSON payloads' value field"
            )
            i.add_argument(
                "--ts-field", default="ts", metavar="FIELD", help="JSON payloads' event-time field"
            )
            i.add_argument(
                "--qos",
                type=_whole,
                choices=[0, 1],
                default=1,
                help="1: a message is acknowledged to the broker once Kafka has it",
            )
            i.add_argument(
                "--client-id",
                default="citybrain-ingest",
                metavar="ID",
                help="the persistent session's id",
            )
            i.add_argument(
                "--inflight",
                type=_whole_in(1, 65_535),  # MQTT 5's Receive Maximum is 16-bit
                default=10_000,
                metavar="N",
                help="unacknowledged QoS 1 messages the broker may send (Receive Maximum)",
            )
            i.add_argument(
                "--max-payload",
                type=_positive(int, MAX_INGEST_BYTES, " bytes"),
                default=1024 * 1024,
                metavar="BYTES",
                help="bytes per payload; a larger one is dead-lettered too_large (at most "
                f"{MAX_INGEST_BYTES:,})",
            )
        else:
            i.add_argument(
                "--sensor-id-template",
                default="{id}-{kind}",
                metavar="TEMPLATE",
                help="NGSI entity -> sensor id, from {id}, {type}, {kind} and Text attributes",
            )
            i.add_argument(
                "--max-body",
                # A body is read whole before it is parsed: 10**20 meant no limit at all.
                type=_positive(int, MAX_INGEST_BYTES, " bytes"),
                default=1024 * 1024,
                metavar="BYTES",
                help=f"bytes per body (at most {MAX_INGEST_BYTES:,})",
            )

    p = command(sub, "playbooks", "check playbooks and routing, test where an alert goes")
    psub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = command(psub, "check", "validate playbooks and routing, with file, line and reason")
    c.add_argument(
        "dir",
        nargs="?",
        help="playbook directory (default: CITYBRAIN_PLAYBOOK_DIR, else the library's)",
    )
    c.add_argument(
        "--routing",
        metavar="FILE",
        help="routing file (default: CITYBRAIN_ROUTING_FILE, else the library's)",
    )
    c.add_argument(
        "--grid",
        metavar="FILE",
        help="grid file whose kinds and cells route matchers are checked against "
        "(default: CITYBRAIN_GRID_FILE)",
    )
    c.set_defaults(func=cmd_playbooks)
    r = command(psub, "route-test", "show which route and playbook an alert would take")
    r.add_argument(
        "labels",
        nargs="+",
        metavar="LABEL=VALUE",
        help='the alert\'s labels as amtool takes them: name=value or name="quoted \\"value\\""',
    )
    r.add_argument(
        "--dir",
        metavar="DIR",
        help="playbook directory (default: CITYBRAIN_PLAYBOOK_DIR, else the library's)",
    )
    r.add_argument(
        "--routing",
        metavar="FILE",
        help="routing file (default: CITYBRAIN_ROUTING_FILE, else the library's)",
    )
    r.add_argument(
        "--grid",
        metavar="FILE",
        help="grid file the cell, street and community labels come from, as in the worker "
        "(default: CITYBRAIN_GRID_FILE)",
    )
    r.set_defaults(func=cmd_playbooks)

    def api_options(parser: argparse.ArgumentParser, changes: bool = False) -> None:
        parser.add_argument(
            "--url", help="the worker's base URL (default http://127.0.0.1:CITYBRAIN_WORKER_PORT)"
        )
        parser.add_argument("--token", help="operator API token (default: $CITYBRAIN_API_TOKEN)")
        if changes:
            parser.add_argument(
                "--idempotency-key",
                metavar="KEY",
                type=an_id_shown_by("a key of your own, or leave --idempotency-key out"),
                help="this action's key: a retry with the same key is applied once (default: "
                "a new key each time; after a 503 the retry line printed carries it)",
            )

    run_actions = {
        "show": "show one run: cell, level, status, deadlines, alerts",
        "ack": "acknowledge a run: someone is on it (stops its escalation)",
        "resolve": "resolve a run (needs --note)",
        "escalate": "escalate a run to the next grid level now (coordinator)",
        "cancel": "cancel a run (needs --note; coordinator)",
        "approve": "approve the step a run waits on (coordinator)",
        "reject": "reject the step a run waits on (coordinator)",
    }
    p = command(sub, "runs", "list playbook runs and act on them through the operator API")
    rsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    lst = command(
        rsub,
        "list",
        "list the runs as a table (latest run of each group; a line says how many earlier, "
        "superseded runs it hides and how to see one)",
    )
    statuses = list(RUN_LIST_STATUSES)
    lst.add_argument(
        "--status",
        choices=statuses,
        metavar="STATUS",
        help=f"only runs with this status, one of {', '.join(statuses)} (runs a "
        "reporter's answer reopened at least once)",
    )
    lst.add_argument("--json", action="store_true", help="print the API's JSON as it is")
    lst.add_argument(
        "--wide",
        action="store_true",
        help="every column with cell names and clock times, however wide (default: fit "
        "COLUMNS or the terminal's width; a pipe gets every column)",
    )
    lst.refuse_together("--json", "--wide", "--wide is for the table; --json prints the JSON")
    api_options(lst)
    lst.set_defaults(func=cmd_runs)
    for action, text in run_actions.items():
        a = command(rsub, action, text)
        a.add_argument(
            "run_id", metavar="RUN_ID", type=RUN_ID, help="the run's id, as 'runs list' shows it"
        )
        if action != "show":  # only the actions send a note
            needed = action in ("resolve", "cancel")  # the API refuses these without one
            a.add_argument(
                "--note",
                required=needed,
                help="why, for the audit trail" + (" (required)" if needed else ""),
            )
        a.add_argument("--json", action="store_true", help="print the API's JSON as it is")
        api_options(a, changes=action != "show")
        a.set_defaults(func=cmd_runs)
    a = command(rsub, "answer", "relay a reporter's answer to a closure message")
    a.add_argument(
        "run_id", metavar="RUN_ID", type=RUN_ID, help="the run whose closure is answered"
    )
    a.add_argument(
        "--report",
        required=True,
        type=an_id_shown_by("a report's id as `runs show RUN_ID` lists it"),
        help="the report id, as 'runs show RUN_ID' lists it",
    )
    verdict = a.add_mutually_exclusive_group(required=True)
    verdict.add_argument(
        "--satisfied", dest="satisfied", action="store_true", help="the reporter is satisfied"
    )
    verdict.add_argument(
        "--unsatisfied",
        dest="satisfied",
        action="store_false",
        help="not satisfied: the run reopens (and escalates from the second time)",
    )
    a.add_argument("--comment", default="", help="the reporter's words, optional")
    a.add_argument("--json", action="store_true", help="print the API's JSON as it is")
    api_options(a, changes=True)
    a.set_defaults(func=cmd_runs)

    p = command(sub, "silences", "list, add or expire silences through the operator API")
    ssub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    lst = command(ssub, "list", "list the silences as a table, active or not")
    lst.add_argument("--json", action="store_true", help="print the API's JSON as it is")
    api_options(lst)
    lst.set_defaults(func=cmd_silences)
    add = command(ssub, "add", "silence the alerts that match every --matcher for a while")
    add.add_argument(
        "--matcher",
        action="append",
        required=True,
        help='a label matcher, e.g. kind="pm25"; repeat it for several, all of which must match',
    )
    add.add_argument(
        "--duration",
        required=True,
        help="how long, a Prometheus duration above 0: 30m, 2h, 1h30m, 7d",
    )
    add.add_argument("--reason", required=True, help="why, for the audit trail")
    add.add_argument("--json", action="store_true", help="print the API's JSON as it is")
    api_options(add, changes=True)
    add.set_defaults(func=cmd_silences)
    exp = command(ssub, "expire", "end a silence now (coordinator)")
    exp.add_argument(
        "silence_id",
        metavar="SILENCE_ID",
        type=an_id_shown_by("an id as `silences list` shows it"),
        help="as 'silences list' shows it",
    )
    exp.add_argument("--json", action="store_true", help="print the API's JSON as it is")
    api_options(exp, changes=True)
    exp.set_defaults(func=cmd_silences)

    p = command(
        sub, "deadletters", "show the dead-letter topic's latest messages and why each was refused"
    )
    p.add_argument(
        "--prefix",
        help="the topic prefix whose <prefix>.deadletter is read (default: "
        "CITYBRAIN_TOPIC_PREFIX, or the running demo's when that is not set)",
    )
    p.add_argument(
        "--limit",
        # Held in memory before they are shown, sorted across partitions: 10**20 read
        # the whole topic into memory (dead letters are up to 1 MB each).
        type=_positive(int, MAX_DEADLETTER_LIMIT),
        default=20,
        help="how many of the latest to show, across partitions (at most "
        f"{MAX_DEADLETTER_LIMIT:,})",
    )
    p.add_argument(
        "--follow", action="store_true", help="then show each new one as it comes, until Ctrl-C"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object a line: topic, partition, offset, time, key, headers, and the "
        "value (value_base64 when it is not UTF-8)",
    )
    p.set_defaults(func=cmd_deadletters)

    p = command(sub, "hash-token", "print the SHA-256 of a token read from stdin")
    p.set_defaults(func=cmd_hash_token)

    p = command(sub, "demo", "the whole loop on real data: stack, worker, replay, summary")
    p.add_argument(
        "--data", nargs="+", metavar="FILE", help="canonical CSVs (default: datasets/*.csv.gz)"
    )
    p.add_argument("--grid", metavar="FILE", help="grid file (default: datasets/grid.yaml)")
    p.add_argument(
        "--summary", metavar="FILE", help="write the summary as JSON here (a .json file)"
    )
    p.add_argument(
        "--report",
        metavar="FILE",
        help="write a what-if report (self-contained HTML) here (a .html file)",
    )
    p.add_argument(
        "--expect",
        metavar="FILE",
        help="YAML list of events you expect alerts for (keys name, sensor_prefix, start, "
        "end); the summary says which were detected or missed, and a missed one exits "
        "with status 1, for a CI check (default: the built-in events of the built-in data, "
        "reported only; none with --data)",
    )
    p.add_argument(
        "--ack-deadline",
        # It becomes CITYBRAIN_ACK_DEADLINE_SECONDS, at most a day.
        type=_positive(float, 86_400, " seconds"),
        default=5.0,
        metavar="SECONDS",
        help="how long each wait for an acknowledgement lasts in the demo",
    )
    p.set_defaults(func=cmd_demo)

    p = command(sub, "report", "write the what-if report (HTML) of a finished replay")
    p.add_argument(
        "--prefix",
        help="the replay's topic prefix (in the demo's summary; default: "
        "CITYBRAIN_TOPIC_PREFIX, or the running demo's)",
    )
    p.add_argument(
        "--data", nargs="+", required=True, metavar="FILE", help="the replayed canonical CSVs"
    )
    p.add_argument(
        "--out", required=True, metavar="FILE", help="where to write the HTML (a .html file)"
    )
    p.add_argument("--title", help="the page title (default: names the data files)")
    p.set_defaults(func=cmd_report)

    p = command(sub, "campaign", "campaign reports from the steps and audit records")
    csub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = command(
        csub, "report", "per area and department: found, resolved, MTTA, MTTR, satisfaction"
    )
    c.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="DATE",
        help="first day (or ISO time), UTC; today, yesterday and tomorrow (any case) are UTC days",
    )
    c.add_argument(
        "--to",
        dest="end",
        required=True,
        metavar="DATE",
        help="end, exclusive (date or ISO time; or today, yesterday, tomorrow: the UTC day's "
        "start)",
    )
    c.add_argument(
        "--out", metavar="FILE", help="report.html or report.json (default: tables on stdout)"
    )
    c.add_argument("--json", action="store_true", help="without --out: JSON on stdout")
    c.add_argument(
        "--wide",
        action="store_true",
        help="tables on stdout with every figure, however wide (default: fit COLUMNS or the "
        "terminal's width; a pipe gets every figure)",
    )
    c.add_argument(
        "--input",
        metavar="FILE",
        help="exported step/audit records (JSON lines); default: read the topics",
    )
    c.add_argument(
        "--prefix",
        help="topic prefix to read (default: CITYBRAIN_TOPIC_PREFIX, or the running demo's "
        "when that is not set)",
    )
    c.add_argument(
        "--export",
        metavar="FILE",
        help="also write the step and audit records read from the topics here (JSON lines, "
        "what --input takes: a .jsonl file)",
    )
    c.add_argument("--grid", metavar="FILE", help="grid file (default: CITYBRAIN_GRID_FILE)")
    # Each pair would leave one of the two unused without a word.
    c.refuse_together("--out", "--json", "the file's name says its format: --out FILE.json")
    c.refuse_together("--out", "--wide", "--wide is for the tables on stdout")
    c.refuse_together("--json", "--wide", "--wide is for the tables; --json prints JSON")
    c.refuse_together(
        "--input", "--prefix", "--input reads an export, --prefix the topics: give one"
    )
    c.refuse_together(
        "--input",
        "--export",
        "--export writes the records read from the topics; --input reads none",
    )
    c.set_defaults(func=cmd_campaign)

    p = command(sub, "rehearse", "replay real reports with simulated field units")
    p.add_argument("--incidents", required=True, metavar="FILE", help="canonical incident CSV")
    p.add_argument(
        "--units",
        required=True,
        metavar="FILE",
        help="units profile YAML, e.g. datasets/service_times/units-nyc.yaml",
    )
    p.add_argument(
        "--ack-deadline",
        type=_positive(float, REHEARSAL_MAX_DEADLINE, " seconds (about 292 years)"),
        action="append",
        metavar="SECONDS",
        help="seconds every wait_ack waits (up to about 292 years, as a playbook's "
        "deadlines); repeat to compare versions side by side",
    )
    p.add_argument(
        "--playbook",
        metavar="FILE",
        default=str(REPO_ROOT / "playbooks" / "library" / "rehearsal" / "citizen-report.yaml"),
        help="the playbook the rehearsal runs",
    )
    p.add_argument("--grid", metavar="FILE", help="grid file (default: CITYBRAIN_GRID_FILE)")
    p.add_argument(
        "--seed", type=_whole, default=0, metavar="N", help="random seed of the simulated units"
    )
    p.add_argument("--out", metavar="FILE", help="report.html or report.json")
    p.add_argument(
        "--on-error",
        choices=["stop", "skip"],
        default="stop",
        help="a bad row of --incidents stops (default) or is skipped and reported, as in replay",
    )
    p.set_defaults(func=cmd_rehearse)

    p = command(
        sub,
        "detect",
        "score timestamp,value CSVs with a detector, each row with only the rows before it",
    )
    p.add_argument("--input", metavar="FILE", help="one CSV to score")
    p.add_argument(
        "--output", metavar="FILE", help="where its scores go (a .csv file; '-': stdout)"
    )
    p.add_argument("--input-dir", metavar="DIR", help="score every CSV under DIR")
    p.add_argument("--output-dir", metavar="DIR", help="where their scores go")
    detector_option(p)
    p.add_argument(
        "--on-error",
        choices=["stop", "skip"],
        default="stop",
        help="a bad row stops (default) or is skipped, reported and left out of the output",
    )
    one_or_all = "one file is --input/--output, a folder --input-dir/--output-dir"
    for single in ("--input", "--output"):
        for folder in ("--input-dir", "--output-dir"):
            p.refuse_together(single, folder, one_or_all)
    p.set_defaults(func=cmd_detect)

    p = command(sub, "bench", "benchmarks that score detectors")
    bsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    nab = command(bsub, "nab", "score a detector on a NAB-layout corpus")
    nab.add_argument("--data", required=True, metavar="DIR", help="NAB's root or its data/")
    nab.add_argument(
        "--labels",
        metavar="FILE",
        help="combined_windows.json (default: labels/ beside the data directory)",
    )
    detector_option(nab)
    nab.add_argument(
        "--threshold",
        # Scores are in [0, 1]: above 1 nothing is ever flagged.
        type=_positive(float, 1),
        metavar="T",
        help="also score at this fixed threshold (default: the one the stream alerts at "
        f"with the detector, {OWN_THRESHOLDS['robust_zscore']:g} for robust_zscore, "
        f"{DEFAULT_THRESHOLD:g} for the others)",
    )
    nab.set_defaults(func=cmd_bench_nab)

    from dashboards.rules import SCRAPE_INTERVAL

    generated = str(REPO_ROOT / "dashboards" / "generated")
    p = command(sub, "dashboards", "generate Grafana dashboards or push them to a Grafana")
    dsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    g = command(dsub, "generate", "write dashboards, provisioning and Prometheus rules")
    g.add_argument("--out", default=generated, metavar="DIR", help="where to write them")
    g.set_defaults(func=cmd_dashboards)
    push = command(dsub, "push", "upsert folder, datasource and dashboards into a Grafana")
    push.add_argument("--url", required=True, help="Grafana's base URL")
    push.add_argument("--token", help="service-account token (default: $CITYBRAIN_GRAFANA_TOKEN)")
    push.add_argument(
        "--prometheus-url",
        metavar="URL",
        help="the datasource URL as Grafana reaches it (default: the local Prometheus)",
    )
    push.add_argument(
        "--scrape-interval",
        default=SCRAPE_INTERVAL,
        metavar="DURATION",
        help="how often that Prometheus scrapes the workers, told to Grafana so that "
        "$__rate_interval spans four scrapes (default: %(default)s, docker/prometheus.yml's)",
    )
    push.add_argument(
        "--generated", default=generated, metavar="DIR", help="the generated files to push"
    )
    push.set_defaults(func=cmd_dashboards)

    p = command(sub, "datasets", "rebuild the committed data slices from the shared data")
    dsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = command(dsub, "build", "convert ../shared/data/city into datasets/")
    b.add_argument(
        "--shared",
        default=str(REPO_ROOT.parent / "shared" / "data" / "city"),
        metavar="DIR",
        help="the shared city data",
    )
    b.add_argument(
        "--out", default=str(REPO_ROOT / "datasets"), metavar="DIR", help="where the slices go"
    )
    b.set_defaults(func=cmd_datasets)
    return parser


def _describe(exc: BaseException) -> tuple[int, str]:
    """The exit status and the one-line reason for an exception that ended a command."""
    import urllib.error

    import kafka.errors

    from citybrain.errors import InputError, ListenError
    from citybrain.stack.process import StackError
    from playbooks.errors import PlaybookError

    if isinstance(exc, CliError):
        return exc.status, exc.message
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, StackError | ListenError):
        return EXIT_SERVICE, str(exc)
    if isinstance(exc, PlaybookError):
        return EXIT_USAGE, _name_file_setting(str(exc))
    if isinstance(exc, StreamsError | InputError):
        return EXIT_USAGE, str(exc)
    # kafka-python 3 dropped NoBrokersAvailable; older releases raise it.
    kafka_down = tuple(
        getattr(kafka.errors, name)
        for name in ("NoBrokersAvailable", "KafkaConnectionError", "KafkaTimeoutError")
        if hasattr(kafka.errors, name)
    )
    if isinstance(exc, kafka_down):
        try:
            where = _settings().kafka_bootstrap
        except StreamsError:
            where = "the configured address"
        return EXIT_SERVICE, (
            f"no Kafka broker answered at {where} ({_kafka_reason(exc)}): {start_stack_hint()}, "
            "or point CITYBRAIN_KAFKA_HOST/CITYBRAIN_KAFKA_PORT at a running one"
        )
    refused = _connection_error(exc)
    if isinstance(exc, urllib.error.URLError) or refused is not None:
        why = said(getattr(exc, "reason", None) or refused or exc)
        return EXIT_SERVICE, f"a service did not answer ({why}): {start_stack_hint()} and retry"
    if isinstance(exc, OSError) and exc.filename is not None:
        return EXIT_USAGE, f"cannot use {exc.filename}: {exc.strerror}"
    return EXIT_BUG, (
        f"unexpected {type(exc).__name__}: {exc}. This is a bug: please report it with the "
        "command you ran; CITYBRAIN_DEBUG=1 prints the traceback"
    )


def _name_file_setting(message: str) -> str:
    """``message`` (a grid or routing file's ``file:line: reason``) led by the setting that
    names the file, as the tokens file's errors are: the user sees which variable to fix
    (trial 4: a YAML mistake in CITYBRAIN_GRID_FILE's file named only the path)."""
    try:
        settings = _settings()
    except StreamsError:
        return message
    for name, path in (
        ("CITYBRAIN_GRID_FILE", settings.grid_file),
        ("CITYBRAIN_ROUTING_FILE", settings.routing_file),
    ):
        if message.startswith(f"{path}:"):
            return f"{name} {message}"
    return message


def said(reason: object) -> str:
    """Why a connection failed, in words: an OSError's own text without Python's
    ``[Errno 111]`` (trial 25: "cannot reach … ([Errno 111] Connection refused)")."""
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    if isinstance(reason, TimeoutError):
        return "timed out"
    return str(reason) or "no answer"


def _kafka_reason(exc: BaseException) -> str:
    """A kafka-python error in words, not its class name (trial 25: "no Kafka broker
    answered at … (NoBrokersAvailable)"): its description, else its text."""
    words = {
        "NoBrokersAvailable": "no broker answered",
        "KafkaConnectionError": "the connection was refused or lost",
        "KafkaTimeoutError": "it did not answer in time",
    }.get(type(exc).__name__)
    text = str(exc).strip()
    return words or getattr(exc, "description", None) or text or "Kafka refused it"


def _connection_error(exc: BaseException) -> BaseException | None:
    """The ConnectionError or TimeoutError behind ``exc``, if any: HTTP clients (niquests
    under grafana-client, urllib3) wrap the refused connection in their own errors."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ConnectionError | TimeoutError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def _quiet_stdout() -> None:
    """After the reader of stdout went away: point it at /dev/null so the interpreter's
    final flush cannot raise again (the Python docs' recipe for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


DEBUG_ON = ("1", "true", "yes")
DEBUG_OFF = ("", "0", "false", "no")


def debug_mode() -> bool:
    """Whether CITYBRAIN_DEBUG asks for a bug's traceback: ``1``, ``true`` or ``yes``
    (any case) turn it on; unset, empty, ``0``, ``false`` and ``no`` leave it off. Raises
    CliError (exit 2) naming the setting and its value for anything else: ``0`` turned it
    on once (trial 9), and a typo must not pass for either."""
    value = os.environ.get("CITYBRAIN_DEBUG", "").strip().lower()
    if value in DEBUG_ON:
        return True
    if value in DEBUG_OFF:
        return False
    raise CliError(
        f"CITYBRAIN_DEBUG is {os.environ['CITYBRAIN_DEBUG']!r}, expected 1, true or yes "
        "(tracebacks of bugs) or 0, false, no or unset (off)"
    )


def _debug_checked() -> bool:
    """debug_mode(), False for a bad value (main has already named it)."""
    try:
        return debug_mode()
    except CliError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the only place exceptions become messages and exit statuses."""
    try:
        debug_mode()  # a bad CITYBRAIN_DEBUG is named before anything runs
        from streams.csvfile import line_limit

        # A bad CITYBRAIN_CSV_MAX_LINE_BYTES is named before any file is read, as a
        # setting (SettingsError, exit 2), even by the commands that load no settings.
        line_limit()
        try:
            parser = build_parser()
            args = parser.parse_args(argv)
            # To print it again, from any directory (t51: a resume line's relative FILE
            # was "no such file" typed in a new shell).
            args.argv = absolute_argv(
                list(sys.argv[1:] if argv is None else argv), path_values(parser, args)
            )
        except SystemExit as exc:  # --help (0) or a usage error (2), already printed
            sys.stdout.flush()
            return exc.code if isinstance(exc.code, int) else EXIT_OK
        if args.command == "worker":
            # faust's Worker parses sys.argv itself; hand it only the program name.
            sys.argv = sys.argv[:1]
        quiet_kafka_loggers()  # every command: the reason is the boundary's one line
        # A SIGTERM (kill, a service manager, timeout) ends every command as Ctrl-C does:
        # killed by default, a detect left its .partial file, a demo its worker running.
        # The worker's shutdown and the ingests have handlers of their own.
        previous = signal.getsignal(signal.SIGTERM)
        own = args.command != "worker" and threading.current_thread() is threading.main_thread()
        if own:
            signal.signal(signal.SIGTERM, _interrupt)
        try:
            status = int(args.func(args))
            sys.stdout.flush()  # a closed pipe shows up here, inside the boundary
        finally:
            if own and previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return status
    except SystemExit as exc:  # faust's worker ends with sys.exit(code)
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or EXIT_OK
        print(f"citybrain: {exc.code}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_PIPE
    except BaseException as exc:
        try:
            status, message = _describe(exc)
        except Exception as inner:  # the boundary itself must never print a traceback
            status, message = EXIT_BUG, f"unexpected {type(exc).__name__}: {exc} ({inner})"
        # Debug mode shows the traceback of a bug only: a user's mistake (exit 2 or 3)
        # keeps its one line and status there too (trial 9).
        if status == EXIT_BUG and _debug_checked():
            raise
        first, *detail = message.splitlines() or [type(exc).__name__]
        try:
            print(f"citybrain: {first}", file=sys.stderr)
            for line in detail:  # e.g. a service's last log lines, after the reason
                print(f"  | {line}", file=sys.stderr)
        except BrokenPipeError:
            pass
        return status


if __name__ == "__main__":
    sys.exit(main())
