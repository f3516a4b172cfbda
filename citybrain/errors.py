"""citybrain's own errors (the CLI and its helpers; streams, playbooks and detectors
have theirs).

``InputError`` is the root of every error that means the user's input is bad: a file, a
row, a pattern, an option's value. The CLI's error boundary (``citybrain.cli.main``)
turns any of them into one line and exit status 2, as it does ``streams.errors
.StreamsError`` and ``playbooks.errors.PlaybookError``; the message names the field or
value and what was expected.
"""

from __future__ import annotations

import json
from pathlib import Path

from playbooks.encodings import not_utf8_guess, wide_encoding


class InputError(ValueError):
    """Bad user input; the message names the file, field or value and what was expected."""


class ListenError(RuntimeError):
    """A server could not listen on its port (already in use by another process); the
    message names the address and the setting to change. The CLI exits with status 3."""


def utf8_text(path: Path, named: str = "") -> str:
    """The text of the file at ``path``, read as UTF-8. Raises InputError naming
    ``[named ]path:line`` and the first byte that is not UTF-8 (each reader's traceback,
    exit 70, before trials 15-20); OSError as reading the file raises it."""
    data = path.read_bytes()
    # t112: read as UTF-8 with a NUL after every letter; t121: one with a byte order
    # mark was said to have none, UTF-32's to be UTF-16LE.
    wide = wide_encoding(data)
    if wide is not None:
        where = f"{named} {path}" if named else str(path)
        raise InputError(f"{where}: the file is {wide}; save it as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        where = f"{named} {path}" if named else str(path)
        # A legacy file is said as one (GBK since t109; Big5, Shift_JIS, EUC-KR and
        # Latin-1 words since t112); a stray byte of binary data needs no guess.
        raise InputError(
            f"{where}:{line}: byte 0x{data[exc.start]:02x} is not UTF-8 "
            f"({not_utf8_guess(data, exc.start)}save the file as UTF-8)"
        ) from None


class KafkaStoppedError(RuntimeError):
    """Kafka stopped answering part-way through a read (stopped, or frozen: it takes
    connections but answers nothing); the message names the broker and what was being
    read, and that nothing of it was shown or written. The CLI exits with status 3."""


def json_error_at(exc: json.JSONDecodeError) -> tuple[int, str]:
    """Where a JSON text's error is, as a file's line and a note: ``(3, "")`` inside
    it, or its last line and ``", at the end of the file"`` for an error at its end
    (a list or object left open): json's own line there is the one after the final
    newline, which the file does not have (t151: ``labels.json:2`` for a file of one
    line; the YAML files' errors alike, playbooks.loader.yaml_error)."""
    doc, pos = exc.doc, exc.pos
    if pos < len(doc.rstrip()):
        return exc.lineno, ""
    body = doc.rstrip()
    return body.count("\n") + 1 if body else 1, ", at the end of the file"
