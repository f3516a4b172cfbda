"""``hash-token``: an operator API token's hash for the tokens file."""

from __future__ import annotations

import argparse
import sys

from citybrain.cli.api import _BEARER, MAX_TOKEN_BYTES, _bearer_fault
from citybrain.cli.base import _BOMS, CliError
from citybrain.commands import (
    command_line,
)


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
    # What follows the first line, as far as a token's length: a second token there was
    # dropped without a word, and one after a blank first line was "no token" (t98).
    # Not at a terminal, where the token typed and Enter are all there is (a read there
    # would wait for Ctrl-D).
    if sys.stdin.isatty():
        rest = b""
    else:
        rest = binary.read(limit) if binary is not None else sys.stdin.read(limit).encode()
    later = next((n for n, text in enumerate(rest.splitlines(), start=2) if text.strip()), None)
    typed = f"`{command_line('hash-token', only=())} < token.txt`"
    if later is not None:
        first = "is empty" if not line else "holds a token"
        raise CliError(
            f"standard input has more than the token's line: its first line {first}, and "
            f"line {later} is not empty; hash-token hashes one token, given alone on the "
            f"first line: {typed}, once a token"
        )
    if not line:
        raise CliError(f"no token on standard input: {typed}")
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
