import argparse
import math
import os
import platform
import socket
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

# Exit status of an interrupted run (Ctrl-C, or SIGTERM inside ``run_topics``), as
# ``citybrain``'s commands (128 + SIGINT).
EXIT_INTERRUPTED = 130
# Exit status of a run whose service did not answer (Kafka frozen or gone, a host name
# whose lookup ran past its bound), as ``citybrain``'s commands.
EXIT_SERVICE = 3
# Exit status of a run whose reader went away (`| head`): 128 + SIGPIPE, as a shell reports.
EXIT_PIPE = 141


def machine() -> dict[str, str]:
    """The machine and the moment, recorded with every result."""
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def run_main(main: Callable[[], object]) -> None:
    """Run a benchmark's ``main``: Ctrl-C or SIGTERM (``timeout``, ``kill``; heard as
    Ctrl-C, ``citybrain.stack.process.sigterm_as_interrupt``) ends it with one line and
    status 130 once its ``finally`` clauses ran (its topics deleted, its workers and
    pools stopped), not with a ``KeyboardInterrupt`` traceback or at once. Its host-name
    lookups are bounded (``citybrain.names``), and a Kafka that stopped answering a
    bounded question (``KafkaStoppedError``) or a lookup past its bound ends it with one
    line and status 3; a reader of its output gone (``| head``) with none and status 141,
    not a ``BrokenPipeError`` traceback."""
    from citybrain import names
    from citybrain.errors import KafkaStoppedError
    from citybrain.stack.process import sigterm_as_interrupt

    previous = socket.getaddrinfo
    names.install()
    try:
        with sigterm_as_interrupt():
            main()
    except KeyboardInterrupt:
        print(f"{sys.argv[0]}: interrupted", file=sys.stderr, flush=True)
        sys.exit(EXIT_INTERRUPTED)
    except (KafkaStoppedError, names.LookupStalledError) as exc:
        print(f"{sys.argv[0]}: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_SERVICE)
    except BrokenPipeError:
        # Its reader went away (`| head`): quiet, as a filter is, with the shell's status
        # for it; stdout pointed at /dev/null so the interpreter's last flush cannot raise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_PIPE)
    finally:
        socket.getaddrinfo = previous  # called in-process (tests): as it was


# Argument types for the benchmarks' command lines: a value no run can use is refused
# by argparse (usage and one line naming the option and value, exit 2) before the run
# starts. t111: `--readings 0` ended in a ZeroDivisionError traceback, `--sensors -1` in
# StopIteration, `--rounds 0` in IndexError, `--data /missing` in FileNotFoundError, and
# an --out that could not be written was found after the whole run, its results lost.


def count(least: int = 1) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``least`` (``--readings``, ``--rounds``;
    ``least=0`` where 0 means "off", as ``--pack``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least:
            raise argparse.ArgumentTypeError(
                f"expected a whole number of at least {least}, got {text!r}"
            )
        return value

    parse.__name__ = "count"
    return parse


def amount(least: float = 0.0, *, above: bool = True) -> Callable[[str], float]:
    """An argparse type: a finite number above ``least`` (``above``) or at least it
    (seconds, milliseconds, a tolerance)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < least or (above and value == least):
            bound = f"above {least:g}" if above else f"of at least {least:g}"
            raise argparse.ArgumentTypeError(f"expected a number {bound}, got {text!r}")
        return value

    parse.__name__ = "amount"
    return parse


def out_file(text: str) -> Path:
    """An argparse type: a results file that can be written (its folder exists and takes
    a new file; it is no folder), checked before the run rather than after it."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory: give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: no directory {str(folder)!r}")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".bench-write-check-"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r}: cannot write in {str(folder)!r} ({exc.strerror})"
        ) from None
    return path


def in_dir(text: str) -> Path:
    """An argparse type: a directory that exists (``--data``, ``--nab``, ``--shared``)."""
    path = Path(text).expanduser()
    if not path.is_dir():
        why = "not a directory" if path.exists() else "no such directory"
        raise argparse.ArgumentTypeError(f"{text!r}: {why}")
    return path


def worker_metric(port: int, name: str) -> float:
    """The sum of metric ``name``'s samples on the worker's ``/metrics`` at ``port``
    (127.0.0.1); 0 while it does not answer (starting, recovering)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + "{", name + " "))
    )
