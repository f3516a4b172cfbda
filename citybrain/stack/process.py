"""Background processes with a pid file, a log file and a clean stop."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType

from citybrain.errors import InputError
from citybrain.ports import listening_pid, proc_pids
from streams.errors import text_lines


class StackError(RuntimeError):
    """A stack component failed to install, start or stop; the message says which and why."""


class StateFileError(InputError):
    """A file the stack keeps under its run directory (a pid file, a lock, a log) that is
    not a file it can use: a directory, a socket or other special file, a symbolic link
    to nothing, or one it may not read. The message names the path, what it is and what
    to do; the CLI exits 2 (``state_file_fault``)."""


# What each special kind of file is called in a message (``state_file_fault``).
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def state_file_fault(path: Path, what: str, write: bool = False) -> str | None:
    """Why ``path`` (``what`` it is to citybrain: "the demo worker's pid file") cannot be
    the file citybrain keeps there, with what to do; None when it is a file it may read
    (and, with ``write``, write), or absent, or under something that is not a directory
    (a mistyped run directory: said by ``citybrain.stack.dirs.not_a_directory``).

    t194: a pid file that was a directory made `stack status` say the service had
    exited and `stack down` end with "cannot use …/worker.pid: Is a directory", exit 2
    and no advice; a socket or an unreadable one was taken as "not running" unsaid."""
    try:
        found = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return f"{path}, {what}, cannot be looked at ({exc.strerror}): {_fix_state(path)}"
    if stat.S_ISLNK(found.st_mode):
        try:
            found = os.stat(path)
        except FileNotFoundError:
            target = os.readlink(path)
            return (
                f"{path}, {what}, is a symbolic link to {target}, which does not exist: "
                f"remove the link (`rm {path}`), or create what it points to"
            )
        except OSError as exc:
            return (
                f"{path}, {what}, is a symbolic link that cannot be followed "
                f"({exc.strerror}): remove the link (`rm {path}`)"
            )
    for test, kind in _KINDS:
        if test(found.st_mode):
            return f"{path}, {what}, is {kind}, not a file: {_fix_state(path, kind)}"
    mode = os.R_OK | (os.W_OK if write else 0)
    if not os.access(path, mode):
        can, able = ("read and written", "readable and writable") if write else ("read", "readable")
        return (
            f"{path}, {what}, cannot be {can} by you (owner uid {found.st_uid}, mode "
            f"{stat.filemode(found.st_mode)}): run citybrain as the user that started the "
            f"stack, or make it {able} by you (`chmod u+rw {path}` as its owner)"
        )
    return None


def _fix_state(path: Path, kind: str | None = None) -> str:
    """What to do about ``path``, which is not a file citybrain can use (``kind``)."""
    remove = f"`rm -r {path}`" if kind == "a directory" else f"`rm {path}`"
    return (
        f"citybrain keeps its own file there; move it away or remove it ({remove}, once "
        "nothing of yours is in it), or point CITYBRAIN_RUN_DIR at another directory"
    )


def check_state_file(path: Path, what: str, write: bool = False) -> None:
    """Raise ``StateFileError`` with ``state_file_fault``'s message when there is one."""
    fault = state_file_fault(path, what, write)
    if fault is not None:
        raise StateFileError(fault)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, a first SIGTERM raises ``KeyboardInterrupt`` where the main
    thread is, as Ctrl-C does, so ``finally`` clauses and context managers run (by
    default SIGTERM ends Python at once: a benchmark killed by ``timeout`` left its 24
    topics on the broker); a second SIGTERM ends the process at once, as before.

    Leaves any handler already set alone (``citybrain``'s boundary turns SIGTERM into
    ``KeyboardInterrupt`` itself) and does nothing outside the main thread, where Python
    cannot set handlers. The previous handler is back when the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one stops at once
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# How much younger than its pid file a process may seem and still be the one the file
# was written for: ``spawn`` writes the file just after the process starts, so only the
# clocks' grain (jiffies, the file system's timestamps) stands between them.
PID_FILE_SLACK = 5.0


@contextlib.contextmanager
def stack_lock(run_dir: Path, what: str, create: bool = True) -> Iterator[None]:
    """Hold ``<run_dir>/stack.lock`` (``flock``, released however the process ends) while
    the block starts or stops the run directory's services; ``what`` (the command, as
    the user typed it) is written in it for another command to name. One already held
    is waited for, said once on stderr with its holder. Without ``create`` (`stack down`)
    a run directory that does not exist is not made for it; one whose lock file cannot
    be opened (read-only, full) runs the block unlocked: stopping must still work there.

    t111: two `stack up` at once (two terminals, `make stack-up` beside `make demo`) both
    started Prometheus: one's pid file named the process that lost the port, the winner
    ran on unstopped by `stack down` and held the port, and both commands failed with
    Prometheus' log; on a fresh run directory the loser's Kafka storage format failed
    with a Java stack trace."""
    import fcntl
    import sys

    if create:
        run_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(run_dir / "stack.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        if create:
            raise
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            print(
                f"citybrain: waiting for {holder or 'another stack command'} to finish with "
                f"the stack of {run_dir} (Ctrl-C stops waiting)",
                file=sys.stderr,
                flush=True,
            )
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"`{what}` (pid {os.getpid()})".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


# Linux's largest pid (PID_MAX_LIMIT on 64-bit kernels; /proc/sys/kernel/pid_max is at
# most this).
PID_MAX = 4_194_304


def pid_in(text: str) -> int | None:
    """The pid a pid file's ``text`` names: ASCII digits alone (white space around them
    taken), 1 to ``PID_MAX``; None for anything else, which names no process of ours.

    t180: a damaged pid file holding a number past a C long (digits run together) made
    `stack status` and `stack down` exit 70, "unexpected OverflowError … This is a bug"
    (``os.kill`` refused it); and ``int`` took ``-1`` (every process, to ``kill``), ``0``
    (our own group), ``+5``, ``1_2`` and Arabic-Indic digits as pids; and 1 (init)."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        return None
    pid = int(text)
    # Not 1 either (t194): init, never a service ``spawn`` started, and always older than
    # any pid file, so a damaged or hand-written one without its start time naming 1 was
    # taken as the service, and `stack down` sent init SIGTERM, then SIGKILL.
    return pid if 2 <= pid <= PID_MAX else None


def pid_file_what(pid_file: Path) -> str:
    """What ``pid_file`` is, for a message: "the pid file of kafka" by its name."""
    return f"the pid file of {pid_file.stem.replace('worker', 'the demo worker')}"


def start_file(pid_file: Path) -> Path:
    """Where ``spawn`` keeps the start time of ``pid_file``'s process (``start_ticks``),
    beside the pid file, which stays the bare pid that `kill $(cat …)` takes."""
    return pid_file.with_name(pid_file.name + ".start")


def read_pid(pid_file: Path) -> int | None:
    """The pid ``pid_file`` names when that process is alive (``alive``) and is the one
    ``spawn`` started: the same start time (``start_ticks``, on the boot clock, as
    ``start_file`` recorded it), else None. A pid file without it (written by an older
    citybrain) takes a process no younger than the file (``PID_FILE_SLACK``).

    t111: a pid file left by a crash (or a reboot) whose pid the kernel had since given
    to another process made `stack status` show that stranger as the service "starting",
    and `stack down` SIGTERMed it (then SIGKILLed it 30 s later). Compared by start
    time, not by the file's age against the wall clock: a clock stepped forward after
    the start (NTP, a resumed VM) made a running Kafka look younger than its pid file,
    stale to `stack status` and left running by `stack down`.

    Raises ``StateFileError`` when ``pid_file`` is no file it can read (a directory, a
    socket, a symbolic link to nothing, unreadable: ``state_file_fault``)."""
    check_state_file(pid_file, pid_file_what(pid_file))
    try:
        pid = pid_in(pid_file.read_text(errors="replace"))
    except FileNotFoundError:
        return stray_pid(pid_file)
    except OSError:
        return None
    if pid is None or not alive(pid):
        return None
    # Its start time beside it likewise (a named pipe there blocked the read for ever).
    check_state_file(start_file(pid_file), f"the start time beside {pid_file.name}")
    try:
        ticks = start_file(pid_file).read_text(errors="replace").strip()
    except OSError:
        ticks = ""
    recorded = int(ticks) if ticks.isascii() and ticks.isdigit() else None
    if recorded is not None:
        now = start_ticks(pid)
        return pid if now is None or now == recorded else None
    try:
        written = time.time() - pid_file.stat().st_mtime
    except OSError:
        return None
    age = process_age(pid)
    if age is not None and age < written - PID_FILE_SLACK:
        return None
    return pid


def stray_pid(pid_file: Path) -> int | None:
    """With ``pid_file`` gone: the process ``spawn`` started for it, found by its output,
    a log file in ``pid_file``'s folder or its ``logs/`` (the demo's worker.log, Kafka's
    logs/kafka.out), deleted or not, and by leading its own session as ``spawn`` makes
    it; None when there is none, or when ``/proc`` cannot say.

    t123: with the run directory deleted under a running stack, `stack down` said each
    service "was not running" and left Prometheus and the demo's worker running on their
    ports, and `stack status` took the worker for "a server the stack did not start"."""
    folders = {str(pid_file.parent), str(pid_file.parent / "logs")}
    pids = proc_pids()
    if pids is None:
        return None
    for pid in pids:
        try:
            output = os.readlink(f"/proc/{pid}/fd/1").removesuffix(" (deleted)")
            leads = os.getsid(pid) == pid
        except OSError:
            continue
        if leads and os.path.dirname(output) in folders and alive(pid):
            return pid
    return None


def start_ticks(pid: int) -> int | None:
    """Process ``pid``'s start time, clock ticks after boot (``/proc/<pid>/stat``'s
    twenty-second field): the same for as long as the process lives, another for any
    process given its pid later; None when ``/proc`` cannot say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # Fields after the name (in parentheses, which may hold spaces): state is the
        # first, start time the twentieth.
        return int(stat[stat.rfind(")") + 1 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def process_age(pid: int) -> float | None:
    """Seconds since process ``pid`` started (``/proc/<pid>/stat``'s start time against
    ``/proc/uptime``, both on the boot clock), None when ``/proc`` cannot say."""
    started = start_ticks(pid)
    if started is None:
        return None
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - started / os.sysconf("SC_CLK_TCK")


# The packages a worker imports from the checkout (an editable install: the checkout's
# files are the code), and the checkout.
CODE_PACKAGES = ("citybrain", "streams", "detectors", "playbooks", "dashboards")
CODE_ROOT = Path(__file__).resolve().parents[2]
# The host names of this machine a setting may give (Kafka's, the MQTT broker's).
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "")


def code_digests(root: Path | None = None) -> dict[str, str]:
    """The SHA-256 (hex) of each of the checkout's Python files (``CODE_PACKAGES`` under
    ``root``, by default this checkout), by path relative to it: what a worker started now
    imports. About 145 files, a few milliseconds."""
    base = root if root is not None else CODE_ROOT
    digests = {}
    for package in CODE_PACKAGES:
        for path in (base / package).rglob("*.py"):
            try:
                digests[str(path.relative_to(base))] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:  # removed meanwhile
                continue
    return digests


# A code record is taken just before its worker starts; one older than this at the
# worker's start is another start's (a worker an older citybrain started, which wrote none).
CODE_RECORD_SECONDS = 300.0


def record_code(record: Path, root: Path | None = None) -> None:
    """Write ``code_digests`` to ``record`` (JSON) just before a worker starts, so that
    ``code_changed_since`` tells a file whose contents went back to what the worker
    imported (a ``git checkout`` of an edited file, a stash and its pop) from a changed
    one. A record that cannot be written is removed (the check falls back to file times)."""
    try:
        record.write_text(json.dumps(code_digests(root)))
    except OSError:
        with contextlib.suppress(OSError):
            record.unlink(missing_ok=True)


def _recorded(record: Path | None, started: float) -> dict[str, str]:
    """``record``'s digests when it was taken for the start at ``started`` (epoch s),
    else {}."""
    if record is None:
        return {}
    try:
        taken = record.stat().st_mtime
        doc = json.loads(record.read_text())
    except (OSError, ValueError):
        return {}
    if not started - CODE_RECORD_SECONDS <= taken <= started + 1 or not isinstance(doc, dict):
        return {}
    return {str(k): str(v) for k, v in doc.items()}


def code_changed_since(
    pid: int, root: Path | None = None, record: Path | None = None
) -> list[Path]:
    """The checkout's Python files (``CODE_PACKAGES`` under ``root``, by default this
    checkout) changed since process ``pid`` started, relative to ``root``, newest first;
    [] when none did or ``/proc`` cannot say when it started.

    A worker keeps the code it imported at its start: after a ``git pull`` (which writes
    the files it changes), or an edit, it runs the old code until started again, and
    ``stack status`` showed it ``running`` as before, ``stack reload`` (which reads the
    configuration, not the code) said ``reloaded`` (t174). About 140 files: 1-2 ms.
    ``record``: the worker's ``record_code``, taken as it started; a file written since
    whose contents are still those recorded is not changed (t200: a file edited and put
    back with `git checkout` was named, and a restart advised, for the same code)."""
    argv = _process_words(pid, "cmdline")
    if not argv or os.path.abspath(argv[0]) != os.path.abspath(sys.executable):
        # Started by another virtualenv's python: another checkout's code, which this
        # one's files do not say (the stack's commands start it with sys.executable).
        return []
    age = process_age(pid)
    if age is None:
        return []
    started = time.time() - age
    base = root if root is not None else CODE_ROOT
    changed: list[tuple[float, Path]] = []
    for package in CODE_PACKAGES:
        for path in (base / package).rglob("*.py"):
            try:
                when = path.stat().st_mtime
            except OSError:  # removed meanwhile
                continue
            if when > started:
                changed.append((when, path.relative_to(base)))
    recorded = _recorded(record, started) if changed else {}
    if recorded:
        digests = {}
        for _, path in changed:
            with contextlib.suppress(OSError):
                digests[path] = hashlib.sha256((base / path).read_bytes()).hexdigest()
        changed = [(w, p) for w, p in changed if recorded.get(str(p)) != digests.get(p)]
    return [path for _, path in sorted(changed, reverse=True)]


def code_changed_said(changed: Sequence[Path]) -> str:
    """``code_changed_since``'s files in a few words: ``2 Python files of the checkout
    changed since it started (streams/events.py, citybrain/launch.py)``, at most three
    named."""
    named = ", ".join(str(path) for path in changed[:3])
    more = f" and {len(changed) - 3:,} more" if len(changed) > 3 else ""
    files = "file" if len(changed) == 1 else "files"
    return (
        f"{len(changed):,} Python {files} of the checkout changed since it started "
        f"({named}{more}): it runs the code it started with"
    )


def _process_words(pid: int, part: str) -> list[str]:
    """``/proc/<pid>/<part>`` (``cmdline``, ``environ``) as its NUL-separated words; []
    when it cannot be read (ended, another user's)."""
    try:
        raw = Path(f"/proc/{pid}/{part}").read_bytes()
    except OSError:
        return []
    return [word.decode("utf-8", "replace") for word in raw.split(b"\0") if word]


def ingest_action(argv: Sequence[str]) -> str | None:
    """``mqtt`` or ``http`` when ``argv`` is a ``citybrain ingest`` command line (the
    console script, ``python -m citybrain`` or ``-m citybrain.cli``), else None."""
    for at, word in enumerate(argv):
        if (Path(word).name == "citybrain" or word in ("citybrain", "citybrain.cli")) and argv[
            at + 1 : at + 2
        ] == ["ingest"]:
            action = argv[at + 2] if len(argv) > at + 2 else ""
            return action if action in ("mqtt", "http") else None
    return None


def running_ingests(ports: dict[str, int], defaults: dict[str, int]) -> list[tuple[int, str]]:
    """The ``citybrain ingest`` processes of this user that feed this stack: pid and
    ``mqtt`` or ``http``, by pid. One feeds it when its own ``CITYBRAIN_KAFKA_PORT``
    (Kafka's host this machine's) or, for MQTT, ``CITYBRAIN_MQTT_PORT`` (read from its
    environment, ``defaults`` when unset) is ``ports``'s (both keyed by setting name).

    The ingests are the user's processes, not the stack's: `stack down` leaves them
    running, waiting for Kafka (and the broker) to come back, and said nothing of them,
    so a newcomer's "everything is stopped" left two processes retrying for good (t174)."""
    pids = proc_pids() or []
    found = []
    for pid in pids:
        if pid == os.getpid():
            continue
        action = ingest_action(_process_words(pid, "cmdline"))
        if action is None:
            continue
        environ = dict(word.split("=", 1) for word in _process_words(pid, "environ") if "=" in word)
        if environ.get("CITYBRAIN_KAFKA_HOST", "127.0.0.1") not in LOCAL_HOSTS:
            continue
        port = {
            name: environ.get(name, "").strip() or str(value) for name, value in defaults.items()
        }
        kafka = port["CITYBRAIN_KAFKA_PORT"] == str(ports["CITYBRAIN_KAFKA_PORT"])
        mqtt = action == "mqtt" and port["CITYBRAIN_MQTT_PORT"] == str(ports["CITYBRAIN_MQTT_PORT"])
        if kafka or mqtt:
            found.append((pid, action))
    return sorted(found)


def running_seconds(pid_file: Path) -> float | None:
    """Seconds since the service of ``pid_file`` was started (``spawn`` writes the file
    then), or None when it is not running."""
    if read_pid(pid_file) is None:
        return None
    try:
        return max(0.0, time.time() - pid_file.stat().st_mtime)
    except OSError:
        return None


def other_port(name: str, setting: str, started: int | None, port: int) -> str:
    """ "" unless the run directory's ``name`` runs on ``started``, another port than this
    shell's ``setting`` gives: then what to set (t76: with only the demo's
    CITYBRAIN_RUN_DIR, `stack status` said its Kafka was "starting" on 19092 for ever and
    `stack up` waited 90 s for it there, while it served on the demo's 25092)."""
    from citybrain.commands import command_line

    if started is None or started == port:
        return ""
    # t217: "set that (and the stack's other settings)" named no other, though the last
    # demo recorded them all: the command is printed with them (command_line), and this one.
    status = command_line("stack", "status", env={setting: str(started)})
    return (
        f"{name} of this run directory runs on port {started}, not {port}: it was started "
        f"with {setting}={started}; set that (and the stack's other settings) in this shell, "
        f"as this command carries them: `{status}`"
    )


def serving_run_dir(port: int, log_file: Path, run_dir: Path) -> Path | None:
    """The run directory of another local stack whose service listens on ``port``: the
    listening process's output is ``log_file``'s place (relative to ``run_dir``, this
    shell's run directory) under that directory, as ``spawn`` starts every service. None
    when nothing listens, the listener is no stack's service of that kind (or ``/proc``
    cannot say), or it is ``run_dir``'s own."""
    pid = listening_pid(port)
    if pid is None:
        return None
    try:
        output = Path(os.readlink(f"/proc/{pid}/fd/1").removesuffix(" (deleted)"))
    except OSError:
        return None
    run_dir = Path(os.path.abspath(run_dir))
    try:
        place = Path(os.path.abspath(log_file)).relative_to(run_dir).parts
    except ValueError:
        return None
    if len(output.parts) <= len(place) or output.parts[-len(place) :] != place:
        return None
    other = Path(*output.parts[: -len(place)])
    return None if other == run_dir else other


def other_run_dir(name: str, port: int, other: Path | None, run_dir: Path) -> str:
    """ "" unless ``other`` (``serving_run_dir``) names another run directory whose
    ``name`` serves this shell's ``port``; then that, and the setting it was started with
    (``stop_other_stack`` gives the command that stops it).

    t164: a demo run with CITYBRAIN_RUN_DIR=/tmp/demo2, then `stack down` typed with its
    ports but not its run directory, said every service "was not running" (exit 0) and
    left them all running; `stack reload` said "map rules reloaded" having written them
    into the other directory, which that Prometheus does not read."""
    if other is None:
        return ""
    return (
        f"the {name} on port {port} is the stack of run directory {other} (started with "
        f"CITYBRAIN_RUN_DIR={other}), not of this shell's {Path(os.path.abspath(run_dir))}"
    )


def refuse_other_run_dir(name: str, port: int, other: Path | None, run_dir: Path) -> None:
    """Raise ``StackError`` when ``other`` (``serving_run_dir``) names another run
    directory whose ``name`` serves ``port``: a start here would fail on the port, and
    `stack down` here would not stop it, so both are said, with the command that stops it.
    """
    if other is not None:
        raise StackError(
            f"{other_run_dir(name, port, other, run_dir)}: `{stop_other_stack(other)}` stops "
            "it, or give this run directory's stack ports of its own"
        )


def stop_other_stack(other: Path) -> str:
    """The command that stops the stack of run directory ``other``, as this shell types it
    (with the settings its last demo recorded)."""
    from citybrain.commands import command_line

    return command_line("stack", "down", env={"CITYBRAIN_RUN_DIR": str(other)})


def listed_port(path: Path, pattern: str) -> int | None:
    """The port ``pattern``'s group 1 finds in the file ``path`` (a service's config as
    the stack wrote it), None when unreadable or absent."""
    import re

    try:
        found = re.search(pattern, path.read_text(encoding="utf-8", errors="replace"), re.M)
    except OSError:
        return None
    return int(found.group(1)) if found else None


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is no zombie; False for a number no process
    has (0 and -1 name groups of processes to ``kill``, past ``PID_MAX`` none)."""
    if not 1 <= pid <= PID_MAX:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


# The logs ``spawn`` writes (the demo's worker.log, prometheus.log, mosquitto.log, Kafka's
# kafka.out) are rolled as Kafka's server.log is (t176): past LOG_MB into <log>.1 (the
# newest) to <log>.LOG_FILES, so at most (LOG_FILES + 1) * LOG_MB MB each. They grew
# without bound for as long as the process ran (t186).
LOG_MB = 100
LOG_FILES = 5


def fresh_log(log_file: Path, files: int = LOG_FILES) -> None:
    """Move a non-empty ``log_file`` to ``<log_file>.1``, the older ones up to
    ``<log_file>.<files>`` (the oldest dropped), creating its folder: a start's log then
    holds that start's lines only, and the rolled files of the start before are kept."""
    from citybrain.stack.logroll import shift

    log_file.parent.mkdir(parents=True, exist_ok=True)
    if log_file.exists() and log_file.stat().st_size:
        shift(log_file, files)
        log_file.replace(log_file.with_name(log_file.name + ".1"))


def spawn(
    cmd: list[str],
    log_file: Path,
    pid_file: Path,
    env: dict[str, str] | None = None,
    max_bytes: int | None = None,
    files: int = LOG_FILES,
) -> int:
    """Start ``cmd`` in its own session, its output to a fresh ``log_file`` (the previous
    start's kept as ``<log_file>.1``), its pid written to ``pid_file``; the pid.

    A fresh log per start: appended across starts, a process that failed before writing
    a line was explained by the tail of the run before it (the demo's worker, Kafka).
    The log is bounded while the process runs (``citybrain/stack/logroll.py``, a small
    script started beside it): past ``max_bytes`` (default ``LOG_MB`` MB) it is rolled
    into ``<log_file>.1`` to ``.<files>``; the process appends (``O_APPEND``), so it
    writes on at the start of the emptied file."""
    fresh_log(log_file, files)
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    ticks = start_ticks(proc.pid)
    roll_log(
        proc.pid, ticks, log_file, LOG_MB * 1_000_000 if max_bytes is None else max_bytes, files
    )
    # The start time first: a reader between the two writes sees the old pid (gone)
    # with it, never the new pid with the previous process's start time.
    if ticks is None:
        start_file(pid_file).unlink(missing_ok=True)
    else:
        start_file(pid_file).write_text(str(ticks))
    pid_file.write_text(str(proc.pid))
    return proc.pid


def roll_log(pid: int, ticks: int | None, log_file: Path, max_bytes: int, files: int) -> None:
    """Start ``logroll.py`` to bound ``log_file`` while process ``pid`` (started at
    ``ticks``) lives: its own session (a Ctrl-C at the terminal or a signal to the
    process's group leaves it to end by itself, a poll after the process), no output,
    standard library only (``-I``: no user site, no ``PYTHON*`` settings). The script
    forks and its first process exits at once (waited for here), so it is no child of
    this process."""
    script = Path(__file__).with_name("logroll.py")
    argv = [str(pid), "-" if ticks is None else str(ticks), str(log_file), str(max_bytes)]
    # On a failure the process runs all the same, its log unbounded as before t186.
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(
            [sys.executable, "-I", str(script), *argv, str(files)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            check=False,
            timeout=30,
        )


def process_state(pid: int) -> str | None:
    """The one-letter state ``/proc/<pid>/stat`` gives (``R``, ``S``, ``T`` stopped, ``t``
    traced, ``Z``...), None when the process or ``/proc`` is not there."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The name (field 2) is in parentheses and may hold spaces: the state follows the last ")".
    fields = stat[stat.rfind(")") + 1 :].split()
    return fields[0] if fields else None


def frozen(pid: int | None) -> bool:
    """Whether process ``pid`` is stopped (``kill -STOP``, a debugger): alive, yet it runs
    no code and answers nothing until ``kill -CONT``."""
    return pid is not None and process_state(pid) in ("T", "t")


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    log_file: Path,
    alive: Callable[[], bool],
    pid_file: Path | None = None,
    logs: Sequence[Path] = (),
) -> None:
    """Return once ``check()`` holds; raise ``StackError`` naming ``what`` when its process
    exits (``alive()`` false), is frozen (``pid_file``'s process in state ``T``/``t``:
    a ``kill -STOP`` or a debugger; it cannot answer, so this says so at once with
    ``kill -CONT`` and the log's path), or ``timeout`` seconds pass (its pid, that it
    runs without answering, and how to restart it). An exit or a timeout ends with the
    tail of the first of ``logs`` (else ``log_file``) that holds anything, named; an
    empty log is said so. ``logs`` must not be empty when given.

    t104: a demo on a stack whose Kafka was frozen waited 90 s in silence, then said only
    "Kafka not ready after 90s; last log lines:" over nothing (Kafka writes its
    server.log, not the kafka.out that was read), no pid, no cause, no fix."""
    deadline = time.monotonic() + timeout
    shown = list(logs) or [log_file]
    while time.monotonic() < deadline:
        if check():
            return
        if not alive():
            raise StackError(f"{what} exited during start-up; {log_lines(shown)}")
        pid = read_pid(pid_file) if pid_file is not None else None
        if frozen(pid):
            raise StackError(
                f"{what} (pid {pid}) is frozen (stopped by `kill -STOP` or a debugger), so "
                f"it cannot answer: `kill -CONT {pid}` resumes it, or `{restart_hint()}` "
                f"restarts it (its log: {first_written(shown)})"
            )
        time.sleep(0.25)
    pid = read_pid(pid_file) if pid_file is not None else None
    running = f" (pid {pid}) runs but" if pid is not None else ""
    raise StackError(
        f"{what}{running} did not answer within {timeout:.0f}s (frozen or overloaded?): "
        f"`{restart_hint()}` restarts it; {log_lines(shown)}"
    )


def restart_hint() -> str:
    """The commands that stop the stack and start it again, as this shell types them."""
    from citybrain.commands import command_line

    return f"{command_line('stack', 'down')}` then `{command_line('stack', 'up')}"


def first_written(logs: Sequence[Path]) -> Path:
    """The first of ``logs`` that holds anything, else the first."""
    for path in logs:
        with contextlib.suppress(OSError):
            if path.stat().st_size:
                return path
    return logs[0]


def log_lines(logs: Sequence[Path]) -> str:
    """ "last lines of <log>:" and the tail of the first of ``logs`` that holds anything;
    "its log <path> is empty" when none does (the colon over nothing read as cut off)."""
    path = first_written(logs)
    with contextlib.suppress(OSError):
        if path.stat().st_size:
            return f"last lines of {path}:\n{tail(path)}"
    return f"its log {path} is empty"


def stop(pid_file: Path, timeout: float = 30.0) -> bool:
    """SIGTERM (and SIGCONT to a frozen process, so it acts on it), wait up to
    ``timeout`` seconds, then SIGKILL. Returns whether a process was running."""
    pid = read_pid(pid_file)
    if pid is None:
        # A run directory under a file (a mistyped CITYBRAIN_RUN_DIR) holds nothing to
        # stop: `stack down` said "cannot use …/worker.pid: Not a directory" (t111).
        with contextlib.suppress(NotADirectoryError):
            pid_file.unlink(missing_ok=True)
            start_file(pid_file).unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    if frozen(pid):
        # t104: a frozen process holds the SIGTERM until it runs again: `stack down` of a
        # kill -STOPped Kafka waited the whole 30 s, then killed it without its shutdown.
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and read_pid(pid_file) is not None:
        time.sleep(0.2)
    if read_pid(pid_file) is not None:
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    pid_file.unlink(missing_ok=True)
    start_file(pid_file).unlink(missing_ok=True)
    return True


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of the log at ``path``; "(no log at …)", or why it is no
    log citybrain can read (a named pipe there blocked the read for ever, t194)."""
    fault = state_file_fault(path, "a log")
    if fault is not None:
        return f"({fault})"
    try:
        return "\n".join(text_lines(path.read_text(errors="replace"))[-lines:])
    except OSError:
        return f"(no log at {path})"


def debian_binary(
    service: str, binary: str, packages: list[str], search_path: str | None = None
) -> str:
    """The path of ``binary``; when missing, installs Debian's ``packages`` with apt-get
    (root only). Raises ``StackError`` naming ``service`` and the command to run."""
    found = shutil.which(binary, path=search_path)
    if found:
        return found
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
    if os.geteuid() != 0:
        raise StackError(
            f"{service}: not installed and not root; run "
            f"`sudo apt-get install -y --no-install-recommends {' '.join(packages)}`"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], install):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise StackError(f"{service}: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    found = shutil.which(binary, path=search_path)
    if not found:
        raise StackError(f"{service}: apt-get reported success but no {binary} binary")
    return found


def worker_argv() -> list[str]:
    """The command line that starts a worker in its own process (the demo's, `stack
    restart-worker`): through ``citybrain.launch``'s guard, ``python -m citybrain``.
    ``-m citybrain.cli`` imported the whole command line before any handler was in: a
    SIGTERM in that second (`stack down` right after a start) killed the worker unsaid,
    status 143 (t173), and a module the virtualenv lacks after a pull was a traceback from
    importing ``citybrain.cli``'s package, where the guard makes it the log's last line
    naming `make install` (t174)."""
    return [sys.executable, "-m", "citybrain", "worker"]
