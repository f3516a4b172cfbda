"""The error boundary: runs one command and turns every exception into one line on
stderr and a documented exit status (``citybrain.cli`` lists them)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Sequence

from citybrain import names
from citybrain.cli.base import (
    EXIT_BUG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE,
    EXIT_SERVICE,
    EXIT_USAGE,
    CliError,
    _connection_error,
    _interrupt,
    _kafka_reason,
    _settings,
    absolute_argv,
    expand_home,
    path_values,
    said,
)
from citybrain.cli.parser import build_parser
from citybrain.cli.stack import quiet_kafka_loggers
from citybrain.commands import (
    command_line,
    start_stack_hint,
)
from citybrain.launch import missing_dependency
from citybrain.text import cell
from streams.errors import StreamsError


def _kafka_not_ready(exc: BaseException) -> bool:
    """Whether ``exc`` is an error kafka-python or aiokafka marks retriable (a broker
    without leaders or brokers in its metadata yet, a coordinator loading, ...)."""
    import aiokafka.errors
    import kafka.errors

    if isinstance(exc, kafka.errors.RetriableError):
        return True
    return isinstance(exc, aiokafka.errors.KafkaError) and bool(getattr(exc, "retriable", False))


def _describe(exc: BaseException) -> tuple[int, str]:
    """The exit status and the one-line reason for an exception that ended a command."""
    import urllib.error

    import kafka.errors

    from citybrain.errors import InputError, KafkaStoppedError, ListenError
    from citybrain.stack.process import StackError
    from playbooks.errors import PlaybookError

    if isinstance(exc, CliError):
        return exc.status, exc.message
    missing = missing_dependency(exc)  # imported inside a command, after a pull (t174)
    if missing is not None:
        return EXIT_SERVICE, missing
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, StackError | ListenError | KafkaStoppedError):
        return EXIT_SERVICE, str(exc)
    if isinstance(exc, PlaybookError):
        return EXIT_USAGE, _name_file_setting(str(exc))
    if isinstance(exc, StreamsError | InputError):
        return EXIT_USAGE, str(exc)
    # kafka-python 3 dropped NoBrokersAvailable; older releases raise it.
    kafka_down = tuple(
        getattr(kafka.errors, name)
        # RequestTimedOutError: a frozen broker, past kafka-python's request timeout (its
        # metadata calls raised it, which was called a bug, exit 70).
        for name in (
            "NoBrokersAvailable",
            "KafkaConnectionError",
            "KafkaTimeoutError",
            "RequestTimedOutError",
        )
        if hasattr(kafka.errors, name)
    )
    if isinstance(exc, kafka_down):
        try:
            settings = _settings()
        except StreamsError:
            settings = None
        where = settings.kafka_bootstrap if settings else "the configured address"
        if settings and _takes_connections(settings.kafka_host, settings.kafka_port):
            # t85: a frozen or wedged broker (it takes connections, answers nothing) was
            # told to be started, which `stack up` answers with "already running".
            return EXIT_SERVICE, (
                f"no Kafka broker answered at {where} ({_kafka_reason(exc)}), though a "
                "process there takes connections: a broker frozen, overloaded or still "
                f"starting? `{command_line('stack', 'status')}` says whether the local "
                "stack's Kafka runs and answers"
            )
        return EXIT_SERVICE, (
            f"no Kafka broker answered at {where} ({_kafka_reason(exc)}): {start_stack_hint()}, "
            "or point CITYBRAIN_KAFKA_HOST/CITYBRAIN_KAFKA_PORT at a running one"
        )
    if _kafka_not_ready(exc):
        # t215: right after a frozen broker thawed, `deadletters` met kafka-python's
        # MetadataEmptyBrokerList, which was called a bug (exit 70). Every error either
        # client marks retriable is a broker not ready yet, not ours.
        try:
            where = _settings().kafka_bootstrap
        except StreamsError:
            where = "the configured address"
        return EXIT_SERVICE, (
            f"Kafka at {where} was not ready ({_kafka_reason(exc)}): retry in a moment; "
            f"`{command_line('stack', 'status')}` says whether the local stack's Kafka runs "
            "and answers"
        )
    refused = _connection_error(exc)
    if isinstance(exc, urllib.error.URLError) or refused is not None:
        why = said(getattr(exc, "reason", None) or refused or exc)
        return EXIT_SERVICE, f"a service did not answer ({why}): {start_stack_hint()} and retry"
    if isinstance(exc, OSError) and exc.filename is not None:
        return EXIT_USAGE, (
            _unwritable(exc) or _no_file(exc) or f"cannot use {exc.filename}: {exc.strerror}"
        )
    if isinstance(exc, OSError) and _disk_refused(exc):
        # A write refused after its file was opened names no file (t164: `stack reload`
        # on a full run directory was "unexpected OSError … This is a bug", exit 70).
        return EXIT_USAGE, _full_disk(exc)
    return EXIT_BUG, (
        f"unexpected {type(exc).__name__}: {exc}. This is a bug: please report it with the "
        "command you ran; CITYBRAIN_DEBUG=1 prints the traceback"
    )


def _disk_refused(exc: OSError) -> bool:
    """Whether ``exc`` is a disk refusing a write: full, over quota or read-only."""
    import errno

    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _full_disk(exc: OSError) -> str:
    """One line for ``exc`` (``_disk_refused``, no file named): the run directory or
    CITYBRAIN_HOME when its disk is the one that refused (full, or read-only), with what
    to do; else the reason and what to do."""
    from citybrain.stack.dirs import MIN_FREE_MB, unwritable_message

    reason = exc.strerror or str(exc)
    with contextlib.suppress(StreamsError):
        settings = _settings()
        for root in (settings.run_dir, settings.home):
            with contextlib.suppress(OSError):
                stat = os.statvfs(root)
                full = stat.f_bavail * stat.f_frsize / 1e6 < MIN_FREE_MB
                read_only = bool(stat.f_flag & os.ST_RDONLY)
                if full or read_only:
                    found = unwritable_message(settings, root, reason, exc.errno)
                    if found:
                        return found
    return f"a write was refused ({reason}): free space on the disk, or make it writable, and retry"


def _no_file(exc: OSError) -> str | None:
    """What the path ``exc`` names is, and what to do, when it is no file citybrain can
    use: a directory, a socket or other special file, a symbolic link to nothing, one it
    may not read (``citybrain.stack.process.state_file_fault``; t194: a log, a settings
    file or a pid file that was a directory was "cannot use PATH: Is a directory"). None
    when it is a plain file (the OSError is about something else)."""
    import errno
    from pathlib import Path

    from citybrain.stack.process import state_file_fault

    if exc.errno not in (errno.EISDIR, errno.ELOOP, errno.ENXIO, errno.EACCES, errno.ENOENT):
        return None
    path = Path(os.fsdecode(exc.filename))
    return state_file_fault(path, "a file citybrain uses", write=exc.errno == errno.EACCES)


def _unwritable(exc: OSError) -> str | None:
    """The setting and what to do when ``exc`` is a write refused under the run directory
    or CITYBRAIN_HOME (read-only, full: t111 said only "cannot use PATH: Read-only file
    system"); None for any other file, or when the settings cannot be read."""
    import errno
    from pathlib import Path

    from citybrain.stack.dirs import not_a_directory, unwritable_message

    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        # A file where the run directory (or a folder in it) belongs (t164: `worker`,
        # `stack reload` and `stack down --wipe` said "cannot use …/faust/citybrain: Not a
        # directory", naming no setting).
        try:
            return not_a_directory(_settings(), Path(os.fsdecode(exc.filename)))
        except StreamsError:
            return None
    if exc.errno not in (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM):
        return None
    try:
        settings = _settings()
    except StreamsError:
        return None
    return unwritable_message(
        settings, Path(os.fsdecode(exc.filename)), exc.strerror or str(exc), exc.errno
    )


def _after_stalled_lookup(exc: BaseException, status: int, message: str) -> tuple[int, str]:
    """A service that did not answer because a host-name lookup ran past its bound
    (``citybrain.names``) is said with that lookup first: what was looked up, of which
    name servers (the clients report only that the service did not answer). A failure
    caused by the lookup itself is exit 3 as well."""
    stall = names.stalled()
    if stall is None:
        return status, message
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in chain:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    if status != EXIT_SERVICE and not any(isinstance(e, names.LookupStalledError) for e in chain):
        return status, message
    if str(stall) in message:
        return EXIT_SERVICE, message
    return EXIT_SERVICE, f"{stall}, so: {message}"


def _cut_typed(message: str, argv: Sequence[str] | None) -> str:
    """``message`` with each very long word typed on the command line, or value of a
    ``CITYBRAIN_*`` setting, cut (``hidden.cut_long``): a usage error's words are cut by
    the parser, a command's own refusal here."""
    from citybrain.cli.hidden import cut_long
    from citybrain.cli.parser import _TYPED

    typed = _TYPED or list(sys.argv[1:] if argv is None else argv)
    settings = [value for name, value in os.environ.items() if name.startswith("CITYBRAIN_")]
    return cut_long(message, [*typed, *settings])


def _takes_connections(host: str, port: int) -> bool:
    """Whether a TCP connection to ``host``:``port`` is accepted within a second."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _name_file_setting(message: str) -> str:
    """``message`` (a grid or routing file's ``file:line: reason``) led by the setting that
    names the file, as the tokens file's errors are: the user sees which variable to fix
    (trial 4: a YAML mistake in CITYBRAIN_GRID_FILE's file named only the path)."""
    try:
        settings = _settings()
    except StreamsError:
        return message
    # An option that named the file on the command line first (t151: `route-test --routing
    # x.yaml` said only `x.yaml:2: …`, where every other file's error names its option).
    import itertools
    from pathlib import Path

    from citybrain.cli.parser import _TYPED

    for option, value in itertools.pairwise(_TYPED):
        if option in ("--routing", "--grid", "--dir") and value:
            for path in {value, str(Path(value)), str(Path(value).expanduser())}:
                if message.startswith(f"{path}:") or message.startswith(f"{path}/"):
                    return f"{option} {message}"
    for name, setting in (
        ("CITYBRAIN_GRID_FILE", settings.grid_file),
        ("CITYBRAIN_ROUTING_FILE", settings.routing_file),
    ):
        if message.startswith(f"{setting}:"):
            return f"{name} {message}"
    # A playbook of CITYBRAIN_PLAYBOOK_DIR (`<dir>/x.yaml:2: …`), read by a command that
    # starts a worker (t158: the demo said only the file).
    if message.startswith(f"{settings.playbook_dir}/") and (
        os.environ.get("CITYBRAIN_PLAYBOOK_DIR", "").strip()
    ):
        return f"CITYBRAIN_PLAYBOOK_DIR {message}"
    return message


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


def _one_stream_in_order() -> None:
    """When stdout and stderr are one file (``2>&1 | less``, a log file for both), flush
    stdout at each line: block-buffered, a warning written to stderr in the middle of a
    command's output came out above lines printed before it. A terminal is line-buffered
    already; separate files keep their buffering."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        out, err = os.fstat(sys.stdout.fileno()), os.fstat(sys.stderr.fileno())
        if (out.st_dev, out.st_ino) == (err.st_dev, err.st_ino) and not sys.stdout.isatty():
            sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the only place exceptions become messages and exit statuses.
    The command's host-name lookups are bounded (``citybrain.names``) while it runs."""
    import socket

    previous = socket.getaddrinfo
    try:
        return _main(argv)
    finally:
        socket.getaddrinfo = previous  # called in-process (tests): as it was


def _main(argv: Sequence[str] | None) -> int:
    try:
        _one_stream_in_order()
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
            # A quoted '~/x.csv' is the home directory's, as in a path setting (t101).
            expand_home(parser, args)
        except SystemExit as exc:  # --help (0) or a usage error (2), already printed
            sys.stdout.flush()
            return exc.code if isinstance(exc.code, int) else EXIT_OK
        if args.command == "worker":
            # faust's Worker parses sys.argv itself; hand it only the program name.
            sys.argv = sys.argv[:1]
        quiet_kafka_loggers()  # every command: the reason is the boundary's one line
        # Every host-name lookup of the command bounded (kafka-python's, urllib's,
        # Grafana's): a DNS server that never answers is said, not waited on (t92).
        names.install()
        names.forget()
        # A SIGTERM (kill, a service manager, timeout) ends every command as Ctrl-C does:
        # killed by default, a detect left its .partial file, a demo its worker running.
        # The ingests have handlers of their own, and so has the worker once its event
        # loop runs (they replace this one); until then, its imports, settings, Kafka
        # check and topic creation (about 4 s), a SIGTERM killed it unsaid, status 143,
        # where Ctrl-C there said "interrupted", 130 (t167).
        previous = signal.getsignal(signal.SIGTERM)
        own = threading.current_thread() is threading.main_thread()
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
        status, message = _after_stalled_lookup(exc, status, message)
        if status == EXIT_BUG and _debug_checked():
            raise
        # Lines are the message's own LFs: str.splitlines() also broke at a U+2028, U+0085,
        # \x1c-\x1e, \v or \f inside a value or a file's name, the rest of it shown as a
        # detail line; and each line is shown as a table cell is, an escape sequence or a
        # bidirectional override in a name (a file found under --input-dir) written as its
        # escape, not played on the terminal (t169).
        lines = message.removesuffix("\n").split("\n") if message else []
        first, *detail = [cell(line) for line in lines] or [type(exc).__name__]
        # A value typed whole on the command line is not echoed whole (t158).
        first = _cut_typed(first, argv)
        # What the command printed first goes first, also into one pipe (`2>&1 |`):
        # piped, stdout is block-buffered and the reason came above it. (A reader gone,
        # or stdout closed: nothing to keep in order.)
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        try:
            print(f"citybrain: {first}", file=sys.stderr)
            for line in detail:  # e.g. a service's last log lines, after the reason
                print(f"  | {line}", file=sys.stderr)
        except BrokenPipeError:
            pass
        return status
