"""Writing a file whole or not at all: the stack's own files and the files a command is
told to write (``--out``, ``--export``, ``--report``, ``--summary``)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from citybrain.errors import InputError


def replace_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all: into a new file beside it,
    then renamed over it, so a full disk or a Ctrl-C part-way leaves ``path`` as it was,
    never a truncated file that reads as a finished one. An ``OSError`` names ``path`` (a
    write refused after the open, a full disk, named no file, so it was called a bug);
    the new file is removed."""
    part = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        part.write_text(text, encoding="utf-8")
        os.replace(part, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            part.unlink()
        if isinstance(exc, OSError) and exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def write_output(path: Path | str, text: str, option: str) -> None:
    """``replace_text`` for a file the user named with ``option`` (``--out``): a write
    refused (a full disk, a read-only one) is ``InputError`` naming the option, the file
    and the reason, and says the file is as it was.

    t164: `report --out` and `campaign report --out` on a full disk left an empty file
    and said "unexpected OSError … This is a bug" (exit 70)."""
    path = Path(path)
    try:
        replace_text(path, text)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InputError(
            f"{option} {os.path.abspath(path)!r} could not be written ({reason}); it is as it "
            "was before: free space on its disk, or give a path on another one"
        ) from None
