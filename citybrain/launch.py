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
from pathlib import Path
from types import FrameType

# 128 + SIGINT, as ``citybrain.cli.EXIT_INTERRUPTED`` (not imported: that is the import
# this module guards).
EXIT_INTERRUPTED = 130
# A service the command needs could not start (``citybrain.cli.EXIT_SERVICE``): as for a
# Prometheus not installed, software this machine lacks.
EXIT_SERVICE = 3

# The checkout's own top-level packages (pyproject.toml's packages.find, and bench and
# tests beside them): one of these missing is the checkout's fault, a bug, not the
# virtualenv's.
OWN_PACKAGES = frozenset(
    {"bench", "citybrain", "dashboards", "detectors", "playbooks", "streams", "tests"}
)


def missing_dependency(exc: BaseException) -> str | None:
    """The one-line reason for ``exc`` when it is a third-party module the virtualenv
    lacks (``ModuleNotFoundError`` naming it), else None.

    A pulled commit that adds a dependency (the checkout's code is the editable install's,
    the virtualenv's packages are those of the last ``make install``) ended every command
    in a ``ModuleNotFoundError`` traceback, or, imported inside a command, in "unexpected
    error … This is a bug", exit 70 (t174). ``make``'s targets reinstall when
    pyproject.toml changes; a command typed as ``.venv/bin/citybrain`` does not."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.split(".")[0]
    if top in OWN_PACKAGES:
        return None
    checkout = Path(__file__).resolve().parent.parent
    redo = (
        f"`make install` in {checkout}"
        if (checkout / "Makefile").is_file()
        else f"`{sys.executable} -m pip install -e {checkout}`"
    )
    return (
        f"the Python module '{top}' is not installed in {sys.prefix}, and this checkout's "
        f"code needs it (a newer commit pulled since the last `make install`?): run {redo}, "
        "then the command again"
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM heard as Ctrl-C, as ``citybrain.cli.base._interrupt`` hears it later."""
    raise KeyboardInterrupt


def main() -> int:
    """Import and run ``citybrain.cli.main``; returns its exit status, or 130 with the
    boundary's line ``citybrain: interrupted`` when interrupted (Ctrl-C or SIGTERM) while
    importing, or 3 naming a dependency the virtualenv lacks (``missing_dependency``).
    ``cli.main`` puts its own SIGTERM handler in for the command it runs (and the worker
    its event loop's), so this one covers the imports only."""
    own = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if own else None
    try:
        try:
            from citybrain.cli import main as cli_main
        except KeyboardInterrupt:
            print("citybrain: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except ModuleNotFoundError as exc:
            reason = missing_dependency(exc)
            if reason is None:
                raise
            print(f"citybrain: {reason}", file=sys.stderr)
            return EXIT_SERVICE
        return cli_main()
    finally:
        # The command has said how it ended: a SIGTERM now, as the process exits, must
        # not become a KeyboardInterrupt traceback after it (nor stay in a caller's
        # process, a test's).
        if own and previous is not None:
            signal.signal(signal.SIGTERM, previous)
