"""What every command shares: the exit statuses, ``CliError``, the settings, checks of
files, directories and option values, command lines printed back, and the one-line
reasons of common faults."""

from __future__ import annotations

import argparse
import errno
import math
import os
import re
import sys
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from citybrain.commands import (
    command_line,
)
from citybrain.text import duration, shown_lines, zone
from streams.settings import Settings, load_settings

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
            print(f"citybrain: warning: {shown_lines(line)}", file=sys.stderr)
    return load_settings()


def check_worker_files(settings: Settings) -> None:
    """The files a worker reads at its start, read as it reads them: the grid, the
    playbooks and the routing file; the loaders' errors (exit 2) when one is bad. Every
    command that starts a worker (`stack restart-worker`, the demo) asks this first."""
    from playbooks.loader import load_grid, load_playbooks, load_routing

    load_grid(settings.grid_file)
    load_routing(settings.routing_file, load_playbooks(settings.playbook_dir))


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


# A replay estimated to take longer than this at its speed says so before it starts.
LONG_REPLAY_SECONDS = 600.0


def _duration(seconds: float) -> str:
    """``3 min``, ``16 h 5 min``: a duration as a person reads it; past 2 days, in days
    or years as ``text.duration`` says them."""
    if seconds >= 172_800:
        return duration(seconds)
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{max(minutes, 1)} min"
    return f"{minutes // 60} h" + (f" {minutes % 60} min" if minutes % 60 else "")


def prefix_said(settings: Settings) -> str:
    """``prefix 'x': CITYBRAIN_TOPIC_PREFIX``, or for the default ``prefix 'citybrain':
    CITYBRAIN_TOPIC_PREFIX's default`` (t60's walk: a shell without the variable read
    "prefix 'citybrain': CITYBRAIN_TOPIC_PREFIX" as if it had been set)."""
    default = Settings.model_fields["topic_prefix"].default
    source = "CITYBRAIN_TOPIC_PREFIX" + ("'s default" if settings.topic_prefix == default else "")
    return f"prefix {settings.topic_prefix!r}: {source}"


def _path_actions(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> list[argparse.Action]:
    """The file and directory arguments (``FILE``, ``DIR``) of the command ``parser``
    parsed ``args`` for, and of its subcommand's."""
    found: list[argparse.Action] = []
    current: argparse.ArgumentParser | None = parser
    while current is not None:
        chosen: argparse.ArgumentParser | None = None
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(args, action.dest, None) or "")
            elif action.metavar in ("FILE", "DIR"):
                found.append(action)
        current = chosen
    return found


def path_values(parser: argparse.ArgumentParser, args: argparse.Namespace) -> set[str]:
    """The values ``args`` holds for the file and directory arguments (``FILE``, ``DIR``)
    of the command ``parser`` parsed them for, and of its subcommand's: ``{"a.csv"}``
    for ``replay a.csv --speed 10``."""
    values: set[str] = set()
    for action in _path_actions(parser, args):
        value = getattr(args, action.dest, None)
        items = value if isinstance(value, list) else [value]
        values |= {item for item in items if isinstance(item, str)}
    return values


def home_path(value: str) -> str:
    """A file or directory argument with a leading ``~`` or ``~user`` read as the shell
    reads it unquoted (the home directory); any other value, ``-`` too, as given. A
    quoted ``--data '~/x.csv'`` was read as a folder named ``~`` under this one (no such
    file), where path settings expand it (``streams.settings``)."""
    return os.path.expanduser(value) if value.startswith("~") else value


def expand_home(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every file and directory argument of ``args`` (``FILE``, ``DIR``, as
    ``path_values`` finds them) through ``home_path``, in place, so every check and
    message names the expanded path."""
    for action in _path_actions(parser, args):
        value = getattr(args, action.dest, None)
        if isinstance(value, str):
            setattr(args, action.dest, home_path(value))
        elif isinstance(value, list):
            setattr(args, action.dest, [home_path(v) if isinstance(v, str) else v for v in value])


def absolute_argv(argv: Sequence[str], paths: Collection[str]) -> list[str]:
    """``argv`` with each of ``paths`` (``path_values``) that it gives relative, as an
    argument or an ``--option=value``, made absolute from this directory, so a command
    printed from it works typed anywhere; ``-`` (stdin, stdout) stays."""

    def absolute(value: str) -> str:
        if value not in paths or value == "-":
            return value
        path = Path(home_path(value))
        return str(path if path.is_absolute() else path.absolute())

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


def need_all(checks: Sequence[Callable[[], None]]) -> None:
    """Run every input check (``_need_file``, ``_need_dir`` … as callables), then refuse
    once, naming every input that failed, in the order given, joined by ``; `` on the
    one ``citybrain:`` line (status: the first refusal's). t79: docs/citizens.md's
    `rehearse --incidents datasets/… --units datasets/…` typed outside the checkout
    named --units alone; typed again with its path fixed, --incidents; a command with
    several inputs said one missing file per try."""
    refused: list[CliError] = []
    for check in checks:
        try:
            check()
        except CliError as exc:
            refused.append(exc)
    if len(refused) == 1:
        raise refused[0]
    if refused:
        raise CliError("; ".join(exc.message for exc in refused), refused[0].status)


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
    from streams.inputs import name_too_long

    # The checks below look the path up: one too long for that raised ENAMETOOLONG,
    # said as "cannot use <path>: File name too long", naming no option (t158).
    if too_long := name_too_long(Path(out)):
        raise CliError(f"{option} {out!r}{too_long}")
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
    if folder_must_exist:
        _require_writable_folder(option, out, folder)


def _require_writable_folder(option: str, out: str, folder: Path) -> None:
    """CliError (status 2) naming ``option`` before any work when a new file cannot be
    written in ``folder`` (read-only, full, no permission). t111: `detect --output` in a
    read-only folder read and scored every row, then said "cannot use
    /ro/.det.csv.partial-24204: Read-only file system", a file the user never named."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".citybrain-write-check-"):
            pass
    except OSError as exc:
        raise CliError(
            f"{option} {out}: its folder {str(folder)!r} cannot be written "
            f"({exc.strerror}); give a path in a folder you can write"
        ) from None


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
        # The nearest that exists takes the files, or the folders created for them.
        _require_writable_folder(option, out, here)
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


def _positive(
    kind: type[int] | type[float], most: float | None = None, unit: str = "", least: float = 0.0
) -> Any:
    """An argparse type: a finite number above 0, and at most ``most`` (in ``unit``, for
    the message) if given, at least ``least`` if given (argparse names the option in its
    message). ``inf`` and ``1e308`` passed "above 0": a rehearsal's --ack-deadline of
    either ran its clock past float precision and ended in "unexpected StopIteration"
    (trial 20)."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(_not_number(text, what, unit)) from None
        if not value > 0:  # also refuses nan
            raise argparse.ArgumentTypeError(f"{text!r}: expected more than 0")
        if value < least:
            # A setting's own floor (``streams.settings.MIN_SECONDS``), said before the
            # worker that would be given it refuses to start (t171).
            raise argparse.ArgumentTypeError(f"{text!r}: expected at least {least:g}{unit}")
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
        raise argparse.ArgumentTypeError(_not_number(text, "a whole number")) from None


def _not_number(text: str, what: str, unit: str = "") -> str:
    """Why an option refuses ``text`` as ``what`` (a whole number, a number): a whole
    number written otherwise than in digits (``1e9``, ``1,000``, ``5.0``) is pointed to
    its digits (t147: ``--max-body 1e9`` was "is not a whole number", as if it were not
    one), a number with a letter after it (``1M``, ``30s``) is said to be one with a
    unit; anything else is no number."""
    import re

    try:
        value = float(text.strip().replace(",", ""))
    except ValueError:
        if re.fullmatch(r"\s*[0-9][0-9_.,]*\s*[A-Za-z]+\s*", text):
            from streams.settings import without_unit

            # In the option's own unit (`5m` to seconds: 300), as the settings say it;
            # "the number alone" read 5m as 5 seconds (t151).
            plain = without_unit(text, unit.split()[0]) if unit.strip() else None
            if plain is not None:
                return f"{text!r} is not {what} of {unit.split()[0]}: write {plain}"
            return f"{text!r} is not {what}: give the number alone, without a unit"
        return f"{text!r} is not {what}"
    whole = math.isfinite(value) and value == int(value) and abs(value) < 1e18
    if what == "a whole number" and whole:
        return f"{text!r}: write the whole number in digits, {int(value)}"
    if "," in text and math.isfinite(value):
        return f"{text!r}: write the number without digit groups, {text.replace(',', '')}"
    return f"{text!r} is not {what}"


def _whole_in(low: int, high: int | None = None, unit: str = "") -> Any:
    """An argparse type: a whole number in ``low..high`` (no upper bound if None; in
    ``unit``, ``bytes``, for a value written with one: write 1048576), so
    a value out of range is said as argparse says a malformed one (the command and
    option named, its --help pointed at), not as a bare line the command raised."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(_not_number(text, "a whole number", unit)) from None
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
    an_id.says_empty = True  # type: ignore[attr-defined]  # (the parser's own refusal: not)
    return an_id


RUN_ID = an_id_shown_by("the id as `runs list` or `runs show` shows it")

# RUN_ID, SILENCE_ID, <run_id>: what help texts and printed examples stand an id by; no
# id citybrain makes (grp-….1, UUIDs, report ids) looks so.
_PLACEHOLDER_ID = re.compile(r"<?[A-Z][A-Z_]*_ID>?|<[a-z_]*id>")


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


# What _local adds to a value no date can show.
NOT_A_DATE = " (not a date)"


def _local(ts: Any) -> str:
    """An epoch time as local time with its zone, the way an operator's clock reads. A
    value no date can show (a silence stored with epoch milliseconds, the year 58,888;
    infinite; not a number) is shown raw: one stored value already on a changelog must
    not break every listing (trial 10: `silences list` exited 70 for good)."""
    if ts is None:
        return "-"
    if isinstance(ts, bool):  # JSON's true, an int to Python: no 1970-01-01 00:00:01
        return f"{ts!r}{NOT_A_DATE}"
    try:
        at = datetime.fromtimestamp(ts).astimezone()
        return f"{at:%Y-%m-%d %H:%M:%S} {zone(at)}"
    except (ValueError, OverflowError, OSError, TypeError):
        return f"{ts!r}{NOT_A_DATE}"


def _zone() -> str:
    """The local zone as list headers give it: ``CET, UTC+0100``."""
    now = datetime.now().astimezone()
    name, offset = zone(now), f"{now:UTC%z}"
    return offset if name == offset else f"{name}, {offset}"


def _ago(seconds: float) -> str:
    """``text.duration``, the one formatter of a span (a 100-year silence was "in
    36500.0 d")."""
    return duration(seconds)


_BOMS = ((b"\xef\xbb\xbf", "UTF-8"), (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))


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
        "RequestTimedOutError": "it did not answer in time",
    }.get(type(exc).__name__)
    text = str(exc).strip()
    return words or getattr(exc, "description", None) or text or "Kafka refused it"


# Network failures that are OSErrors but not ConnectionError: an unreachable network or
# host (a routed address nobody answers for).
_NETWORK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENETUNREACH", "EHOSTUNREACH", "EHOSTDOWN", "ENETDOWN", "ETIMEDOUT")
    if hasattr(errno, name)
)


def _connection_error(exc: BaseException) -> BaseException | None:
    """The network failure behind ``exc``, if any: a refused or lost connection, a
    timeout, a host name that does not resolve (``socket.gaierror``), an unreachable
    network, or a TLS handshake that failed (``ssl.SSLError``: an https URL to a plain
    port, a certificate not trusted). HTTP clients (requests under grafana-client,
    urllib3) wrap it in their own errors, so the chain of causes is walked (t79:
    ``dashboards push --url https://grafana.example`` was "unexpected ConnectionError
    ... This is a bug", exit 70, for a name that does not resolve)."""
    import socket
    import ssl

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ConnectionError | TimeoutError | socket.gaierror | ssl.SSLError):
            return cur
        if isinstance(cur, OSError) and cur.errno in _NETWORK_ERRNOS:
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None
