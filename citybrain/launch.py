"""The ``citybrain`` console script (and ``python -m citybrain``): ``citybrain.cli.main``
behind a guard for Ctrl-C and SIGTERM during start-up. Importing the command line takes
about a second (faust, pandas, numpy; several on a loaded machine): a Ctrl-C then ended
it with a ``KeyboardInterrupt`` traceback and status -2, and a SIGTERM (``kill``, a
service manager, ``stack down`` stopping a worker it had just started) killed it unsaid,
status 143, before ``cli.main``'s boundary and its SIGTERM handler existed (t173). Kept
free of heavy imports so the guard is in place almost at once: only Python's own start-up
(about 70 ms, before any of citybrain's code runs) is left to the signals' defaults."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

# 128 + SIGINT, as ``citybrain.cli.EXIT_INTERRUPTED`` (not imported: that is the import
# this module guards).
EXIT_INTERRUPTED = 130


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM heard as Ctrl-C, as ``citybrain.cli.base._interrupt`` hears it later."""
    raise KeyboardInterrupt


def main() -> int:
    """Import and run ``citybrain.cli.main``; returns its exit status, or 130 with the
    boundary's line ``citybrain: interrupted`` when interrupted (Ctrl-C or SIGTERM) while
    importing. ``cli.main`` puts its own SIGTERM handler in for the command it runs (and
    the worker its event loop's), so this one covers the imports only."""
    own = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if own else None
    try:
        try:
            from citybrain.cli import main as cli_main
        except KeyboardInterrupt:
            print("citybrain: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        return cli_main()
    finally:
        # The command has said how it ended: a SIGTERM now, as the process exits, must
        # not become a KeyboardInterrupt traceback after it (nor stay in a caller's
        # process, a test's).
        if own and previous is not None:
            signal.signal(signal.SIGTERM, previous)
