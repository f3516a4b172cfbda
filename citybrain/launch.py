"""The ``citybrain`` console script: ``citybrain.cli.main`` behind a guard for Ctrl-C
during start-up. Importing the command line takes about a second (faust, pandas, numpy;
several on a loaded machine), and a Ctrl-C then ended it with a ``KeyboardInterrupt``
traceback and status -2, before ``cli.main``'s boundary existed. Kept free of heavy
imports so the guard is in place almost at once."""

from __future__ import annotations

import sys

# 128 + SIGINT, as ``citybrain.cli.EXIT_INTERRUPTED`` (not imported: that is the import
# this module guards).
EXIT_INTERRUPTED = 130


def main() -> int:
    """Import and run ``citybrain.cli.main``; returns its exit status, or 130 with the
    boundary's line ``citybrain: interrupted`` when interrupted while importing."""
    try:
        from citybrain.cli import main as cli_main
    except KeyboardInterrupt:
        print("citybrain: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return cli_main()
