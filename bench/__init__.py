import os
import platform
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime

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
