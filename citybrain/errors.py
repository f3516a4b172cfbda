"""citybrain's own errors (the CLI and its helpers; streams, playbooks and detectors
have theirs).

``InputError`` is the root of every error that means the user's input is bad: a file, a
row, a pattern, an option's value. The CLI's error boundary (``citybrain.cli.main``)
turns any of them into one line and exit status 2, as it does ``streams.errors
.StreamsError`` and ``playbooks.errors.PlaybookError``; the message names the field or
value and what was expected.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input; the message names the file, field or value and what was expected."""


class ListenError(RuntimeError):
    """A server could not listen on its port (already in use by another process); the
    message names the address and the setting to change. The CLI exits with status 3."""
