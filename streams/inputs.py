"""Whether a file or directory a command or setting names can be read, in one wording
for all of them (helper brief t37: ``citybrain replay nofile.csv`` said "cannot read: No
such file or directory" where ``demo --data`` and ``detect`` said "no such file").

Each function answers the end of a message whose caller names the option or setting and
the path (``--data 'x.csv'`` + ``: no such file``), or "" when the path is fine. Pure
file inspection: at most the file's first block is read, and a FIFO is never opened.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import itertools
import os
import re
import stat
import zlib
from collections.abc import Callable, Collection
from pathlib import Path

from playbooks.encodings import NUL_RUN
from streams.csvfile import gzip_name, wide_encoding
from streams.errors import closest, shown_path

# Bytes of a file read to tell whether it is text at all.
HEAD_BYTES = 1 << 16
# What a file that is no text file starts with, as a user would know it.
MAGIC = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx or OpenDocument spreadsheet?)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls workbook"),
    (b"PAR1", "a Parquet file"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x7fELF", "a program (ELF)"),
    (b"BZh", "bzip2-compressed (decompress it, or gzip it as FILE.gz)"),
    (b"\xfd7zXZ\x00", "xz-compressed (decompress it, or gzip it as FILE.gz)"),
    # t204: these were "it holds binary data (byte 0x00 at offset 9), not text".
    (b"\x28\xb5\x2f\xfd", "zstd-compressed (decompress it, or gzip it as FILE.gz)"),
    (b"\x04\x22\x4d\x18", "lz4-compressed (decompress it, or gzip it as FILE.gz)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive (extract it, or gzip the CSV in it as FILE.gz)"),
)
NO_SUCH_FILE = ": no such file"
# What README examples, help texts and printed commands stand a path by (`replay FILE`,
# `detect --input F`, `--input-dir D`, `--units PROFILE`, `--data …`); no path of ours
# is named so, so a missing one was typed as printed.
_PLACEHOLDER_PATH = re.compile(r"(?:FILE|F|D|DIR|PROFILE|[A-Z]+_(?:FILE|DIR))…?|.*….*")


def placeholder(path: Path, what: str) -> str:
    """``: 'FILE' is the placeholder the examples print: give <what>'s path`` for a
    missing ``path`` written as an example's stand-in, else "" (a newcomer's walk, t68:
    the demo's ``citybrain replay FILE`` typed as printed said only "FILE 'FILE': no
    such file"). ``what``: ``a file``, ``a directory``."""
    text = str(path)
    if not _PLACEHOLDER_PATH.fullmatch(text):
        return ""
    return f": {text!r} is the placeholder the examples print: give {what}'s path"


def unreadable(
    path: Path,
    kind: str = "",
    for_a_directory: str = "",
    missing: str = "",
    expects: Collection[str] = (),
) -> str:
    """Why ``path`` is no file to read, as the end of a message naming it, or "":

    - ``: no such file`` (then ``missing``, what was expected there, if given), or a
      symbolic link to nothing named as one;
    - `` is a directory, expected a file: <for_a_directory>`` (by default a hint to name
      a file inside it);
    - `` is a pipe …``, `` is a device …``: not a regular file;
    - ``: cannot read: Permission denied`` (any other ``OSError``, a link loop too);
    - with ``kind`` (``CSV``, ``YAML``, ``JSON``, ``JSON lines``): `` is not a CSV file: a
      ZIP archive (…)``, for content no text file has (``not_text``);
    - with ``expects`` (roles, ``EXPECTED``'s keys): `` is the grid definition (…), not a
      reading or incident CSV: …`` for a checkout file meant for another (``mistaken``);
    - ``: its name is too long …`` (``name_too_long``)."""
    if too_long := name_too_long(path):
        return too_long
    if stdin := standard_input(path):
        return stdin
    if path.is_dir():
        hint = for_a_directory or f"name a file in it, e.g. {example_file(path)}"
        return f" is a directory, expected a file: {hint}"
    if not path.is_file():
        why = not_a_regular_file(path)
        if why != NO_SUCH_FILE:
            return why
        hint = placeholder(path, "a file") or near_sibling(path, Path.is_file)
        if not hint and not missing:
            hint = shipped(expects)
        return why + hint + (f" {missing}" if missing else "")
    try:
        with path.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        return f": cannot read: {exc.strerror or exc}"
    # The checkout's own file says more than its format (a feed named as the grid
    # setting is "a replay feed", not "gzip-compressed").
    wrong = mistaken(path, expects) if expects else ""
    reason = not_text(path, head, compressed=kind == "CSV") if kind and not wrong else ""
    return f" is not a {kind} file: {reason}" if reason else wrong


def standard_input(path: Path) -> str:
    """`` stands for standard input, which is not read here …`` for a ``path`` of ``-``
    that is no file in the working directory, else "". t180: ``replay -``, ``rehearse
    --incidents -``, ``campaign report --input -``, ``--grid -`` … said "'-': no such
    file (the checkout's: …)", as if a file named so were missing (detect said it
    already, in its own words)."""
    if str(path) != "-" or os.path.lexists(path):
        return ""
    return (
        " stands for standard input, which is not read here (files are read whole, and "
        "checked, before anything starts): save the input to a file and give its path"
    )


def not_a_directory(path: Path, for_a_file: str = "", missing: str = "") -> str:
    """Why ``path`` is no directory to read, worded as ``unreadable`` words a file, or
    "": `` is a file, expected a directory`` (then ``: <for_a_file>``), ``: no such
    directory`` (then ``missing``), a pipe or device, ``: cannot read: …``, ``: its name
    is too long …``."""
    if too_long := name_too_long(path):
        return too_long
    if standard_input(path):
        return " stands for standard input, expected a directory: give the directory's path"
    if path.is_dir():
        return ""
    if path.is_file():
        # A checkout file is named for what it is (helper brief t72: `playbooks check
        # datasets/grid.yaml` said only "is a file").
        own = own_file_role(path)
        hint = f"it is {own[1]}, for {own[2]}" if own else for_a_file
        return " is a file, expected a directory" + (f": {hint}" if hint else "")
    why = not_a_regular_file(path)
    if path.exists():  # a pipe or a device, which no hint for a file fits
        return why.split(", expected")[0] + ", expected a directory"
    if why != NO_SUCH_FILE and not why.startswith(": a symbolic link"):
        return why  # a loop: cannot read
    near = ""
    if why == NO_SUCH_FILE:
        near = placeholder(path, "a directory") or near_sibling(path, Path.is_dir)
    return ": no such directory" + near + (f" {missing}" if missing else "")


# Entries of a directory looked at for a "did you mean": a typo in /tmp need not list it all.
SIBLINGS_LOOKED_AT = 1000


# File endings of one kind: a name typed with one is near only names with another of the
# same kind (t134: `routing.yaml` missing from /tmp was "did you mean 't126-routing.py'?").
_KINDS = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".gz": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
    ".py": "python",
    ".toml": "toml",
}


def _file_kind(name: str) -> str | None:
    """The kind of a file name's ending (``'yaml'`` for ``x.yml``), its ending itself
    for one not in ``_KINDS``, or None for a name with none (any entry may be meant)."""
    suffixes = [suffix.lower() for suffix in Path(name).suffixes if len(suffix) <= 8]
    if not suffixes:
        return None
    both = "".join(suffixes[-2:])
    return _KINDS.get(both) or _KINDS.get(suffixes[-1]) or suffixes[-1]


def near_sibling(path: Path, fits: Callable[[Path], bool]) -> str:
    """`` (did you mean 'datasets/units-nyc.yaml'?)`` for a missing ``path`` whose
    directory holds an entry of a close name (``closest``) that ``fits`` (a file, a
    directory) and has an ending of the same kind (``.yml`` for ``.yaml``), written as
    ``path`` was (t53's walk: ``--units units-nyc.yml`` said only "no such file" beside
    ``units-nyc.yaml``); else the checkout's (``in_the_checkout``), or ""."""
    try:
        entries = itertools.islice(path.parent.iterdir(), SIBLINGS_LOOKED_AT)
        names = [entry.name for entry in entries]
    except OSError:
        return in_the_checkout(path, fits)
    kind = _file_kind(path.name)
    near = closest(
        path.name,
        [
            name
            for name in names
            if fits(path.parent / name) and (kind is None or _file_kind(name) == kind)
        ],
    )
    if near is not None:
        return f" (did you mean {str(path.parent / str(near))!r}?)"
    return in_the_checkout(path, fits)


# The checkout citybrain runs from, whose committed files (datasets/…) the README names
# by relative paths.
CHECKOUT = Path(__file__).resolve().parent.parent


def in_the_checkout(path: Path, fits: Callable[[Path], bool]) -> str:
    """`` in /tmp (did you mean '/…/citybrain/datasets/x.csv.gz', the checkout's?)`` for
    a relative ``path`` missing from the working directory but in the checkout (t60's
    walk: ``replay datasets/usgs_flood_2019-05.csv.gz`` typed from another directory, as
    the README writes it, said only "no such file"); "" otherwise."""
    if path.is_absolute():
        return ""
    try:
        here = Path.cwd()
        there = CHECKOUT / path
        if here.resolve() == CHECKOUT or not fits(there):
            return ""
        if (there / "__init__.py").exists():
            # The checkout's code (playbooks/, dashboards/) is no input of any command: t79
            # typed `playbooks check playbooks` and was pointed at the package, whose
            # library lies below it.
            return ""
        from playbooks.loader import library_parts

        if parts := library_parts(there):
            # t143: `playbooks check playbooks/library` from /tmp was pointed at the
            # checkout's library, which the same check then refused as no playbook
            # directory: its parts are named instead.
            inner, routing = parts
            also = f", its routing file {str(routing)!r}" if routing else ""
            return (
                f" in {here} (the checkout's {str(there)!r} is a playbook library: its "
                f"playbook directory is {str(inner)!r}{also})"
            )
    except OSError:
        return ""
    return f" in {here} (did you mean {str(there)!r}, the checkout's?)"


def not_text(path: Path, head: bytes, compressed: bool = False) -> str:
    """Why a file whose first bytes are ``head`` is no text file (a CSV, YAML or JSON
    file), or "": a known binary format named, another binary file by its first NUL byte.
    With ``compressed``, as CSV readers take it: a name ending in ``.gz`` must be gzip,
    whose first decompressed bytes are then judged, and gzip under another name is said.
    UTF-16 and UTF-32 text is left to the readers, which name the encoding."""
    gzipped = head.startswith(b"\x1f\x8b")
    if compressed and gzip_name(path):
        if not gzipped:
            return "its name ends in .gz but it is not gzip-compressed"
        try:
            # What the first block decompresses to; a file cut short is left to its
            # reader, which says at which line.
            head = zlib.decompressobj(wbits=31).decompress(head, HEAD_BYTES)
        except zlib.error as exc:
            return f"its gzip data is damaged ({exc})"
    elif compressed and gzipped:
        return f"it is gzip-compressed; name it {path.name}.gz"
    elif gzipped:
        return "it is gzip-compressed; decompress it"
    for magic, what in MAGIC:
        if head.startswith(magic):
            # A spreadsheet is the likeliest slip for a CSV, and its fix well known.
            spreadsheet = compressed and ("Excel" in what)
            return what + ("; save it as CSV (UTF-8) from the spreadsheet" if spreadsheet else "")
    nul = head.find(b"\x00")
    if nul >= 0 and wide_encoding(head.split(b"\n", 1)[0]) is None:
        if (compressed or _NUL_RUN.search(head) or utf16_after(head)) and not _binary_csv(head):
            # A NUL or a few in rows of text: each row's fault, said by the reader; in any
            # text file, a block of NULs a crash left (t180), which the readers name with
            # its line (the YAML loader too: playbooks.loader.yaml_error).
            return ""
        return f"it holds binary data (byte 0x00 at offset {nul:,}), not text"
    return ""


# Control bytes (C0 but tab, LF, CR; and DEL) in the head of a file past which it is
# binary data, not a text file with a damaged row.
_CONTROL = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
BINARY_SHARE = 1 / 8
_NUL_RUN = re.compile(rb"\x00{%d,}" % NUL_RUN)


def utf16_after(head: bytes) -> bool:
    """Whether the line of ``head``'s first NUL starts UTF-16 text after lines of UTF-8
    (Windows PowerShell's `>>` appends UTF-16 to a file): its readers name its lines
    (t180: such a file was refused whole as binary data)."""
    nul = head.find(b"\x00")
    line = head.rfind(b"\n", 0, nul) + 1
    if nul < 0 or line == 0:
        return False
    rest = head[line:].removeprefix(b"\x00")
    letters = rest[:64].replace(b"\x00", b"")  # UTF-16 text's other bytes: no controls
    return (
        not _NUL_RUN.match(rest, rest.find(b"\x00"))
        and letters.translate(None, _CONTROL) == letters
        and wide_encoding(rest) is not None
    )


def _binary_csv(head: bytes) -> bool:
    """Whether a CSV file's first bytes, holding a NUL, are binary data: a NUL in the
    first line (no header holds one), or control bytes in at least ``BINARY_SHARE`` of
    them. A NUL in a row of text is that row's fault, a bad row the reader names with its
    line (``file:3: byte 0x00 (NUL) at column 21``) and ``--on-error skip`` skips: the
    whole file was refused for it when it came in the first 64 KiB, and read row by row
    when it came later."""
    first = re.split(rb"[\r\n]", head, maxsplit=1)[0]
    if b"\x00" in first:
        return True
    if utf16_after(head):
        return False
    # A run of NULs is a block a crash left unwritten (a file system zero-fills what was
    # allocated but never written): the text around it is judged without it, and the
    # reader names the run's line, which --on-error skip skips (t180: a file of good
    # rows and 4 KiB of NULs at its end was refused whole as binary data).
    text = _NUL_RUN.sub(b"", head)
    controls = len(text) - len(text.translate(None, _CONTROL))
    return controls >= len(text) * BINARY_SHARE


# Linux's bounds of a name the file system looks up (NAME_MAX, PATH_MAX), in bytes.
LONGEST_NAME = 255
LONGEST_PATH = 4096


def name_too_long(path: Path) -> str:
    """``: its name is too long …`` (a part of it over 255 bytes, or the whole over
    4,096) when the file system refuses to look ``path`` up for its length
    (ENAMETOOLONG), as the end of a message naming it; else "". t158: `replay`, `detect
    --output`, `--grid`, `playbooks check` … given such a path said only "cannot use
    <path>: File name too long", naming no option (the pathlib checks raise it)."""
    try:
        os.lstat(path)
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            return ""
    else:
        return ""
    longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
    if longest > LONGEST_NAME:
        return (
            f": its name is too long: a part of it is {longest:,} bytes, and a file or "
            f"folder name is at most {LONGEST_NAME}"
        )
    return (
        f": its name is too long: {len(os.fsencode(path)):,} bytes, and a path is at "
        f"most {LONGEST_PATH:,}"
    )


def is_dir(path: Path) -> bool:
    """``path.is_dir()``, False for a path the system cannot look up: pathlib raises
    ENAMETOOLONG, which a check before the one that names it let through (t158)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def is_file(path: Path) -> bool:
    """``path.is_file()``, False for a path the system cannot look up (``is_dir``)."""
    try:
        return path.is_file()
    except OSError:
        return False


def not_a_regular_file(path: Path) -> str:
    """Why ``path``, neither a directory nor a regular file, is no input file, as the
    end of a message naming it: a pipe (``<(zcat x.gz)``) or a device (``/dev/null``)
    exists, so "no such file" was a lie for them (trial 20), as for a symbolic link
    whose target is missing; a link that loops, or a path that cannot be looked up, is
    "cannot read" with the system's reason."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            return f": cannot read: {exc.strerror or exc}"
        if path.is_symlink():
            with contextlib.suppress(OSError):
                return f": a symbolic link to {os.readlink(path)!r}, which does not exist"
        return NO_SUCH_FILE
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        what = "a pipe (such as <(zcat FILE.gz))" if stat.S_ISFIFO(mode) else "a socket"
    else:
        what = "a device"
    return f" is {what}, expected a regular file: save its content to a file and give that"


def as_reason(tail: str) -> str:
    """The end of a message of ``unreadable`` or ``not_a_directory`` as a reason after a
    colon, for the settings' shape (``CITYBRAIN_GRID_FILE is '/x': no such file``, ``…:
    a directory, expected a file: …``)."""
    return tail.removeprefix(": ").removeprefix(" is ")


def example_file(directory: Path) -> str:
    """A file in ``directory`` to show in a hint (a CSV first), or ``DIR/FILE``."""
    for pattern in ("*.csv*", "*"):
        found = sorted(p for p in directory.glob(pattern) if p.is_file())
        if found:
            return str(found[0])
    return str(directory / "FILE")


# The checkout's own files by what they are (helper brief t72: `citybrain replay
# datasets/grid.yaml` said only that its header was not a CSV's). Each: a glob relative
# to the checkout (matched part by part), its role, what it is, and what takes it.
_OWN_FILES: tuple[tuple[str, str, str, str], ...] = (
    (
        "datasets/grid.yaml",
        "grid",
        "the grid definition (cells, sensors, units)",
        "`--grid` of demo, playbooks check/route-test, campaign report and rehearse, "
        "or the CITYBRAIN_GRID_FILE setting",
    ),
    (
        "datasets/incident_departments.csv.gz",
        "departments",
        "the department classifier's training data",
        "the worker's department classifier, which reads it itself (`citybrain datasets "
        "build` writes it); no command takes it as input",
    ),
    (
        "datasets/service_times/*.yaml",
        "units",
        "a units profile",
        "`citybrain rehearse --units`",
    ),
    (
        "datasets/service_times/*.json",
        "service_times",
        "measured service times a units profile names",
        "`citybrain rehearse --units PROFILE` reads it through the profile",
    ),
    ("datasets/*.csv.gz", "feed", "a replay feed", "`citybrain replay FILE` or `--data`"),
    ("*/README.md", "doc", "documentation", "no command reads it"),
    ("*/*/README.md", "doc", "documentation", "no command reads it"),
    (
        "playbooks/library/playbooks/*.yaml",
        "playbook",
        "a playbook",
        "`citybrain rehearse --playbook`, or its directory as `playbooks check DIR` "
        "and the CITYBRAIN_PLAYBOOK_DIR setting",
    ),
    (
        "playbooks/library/rehearsal/*.yaml",
        "playbook",
        "a rehearsal playbook",
        "`citybrain rehearse --playbook`",
    ),
    (
        "playbooks/library/routing.yaml",
        "routing",
        "the routing tree",
        "`--routing` of playbooks check/route-test, or the CITYBRAIN_ROUTING_FILE setting",
    ),
    (
        "dashboards/generated/dashboards/*.json",
        "dashboard",
        "a generated Grafana dashboard",
        "`citybrain dashboards push --generated dashboards/generated`",
    ),
    (
        "dashboards/generated/prometheus/*.yml",
        "rules",
        "generated Prometheus rules",
        "Prometheus (the stack loads them) and `citybrain dashboards push`",
    ),
    ("dashboards/*.py", "source", "dashboards' Python source", "no command reads it"),
    ("*/*.py", "source", "Python source", "no command reads it"),
)
# What a command expects, by role, in the words of the message.
EXPECTED = {
    "feed": "a reading or incident CSV",
    "grid": "a grid file",
    "routing": "a routing file",
    "playbook": "a playbook",
    "units": "a units profile",
    "series": "a timestamp,value CSV",
    "expect": "a list of expected events",
    "export": "a step and audit export",
    "labels": "NAB labels",
    "tokens": "a tokens file",
}


def own_file_role(path: Path) -> tuple[str, str, str] | None:
    """(role, what it is, what takes it) of ``path`` when it is one of the checkout's own
    files under datasets/, playbooks/ or dashboards/ (matched by where it resolves to),
    else None."""
    try:
        rel = path.resolve().relative_to(CHECKOUT)
    except (OSError, ValueError):
        return None
    for pattern, role, what, takes in _OWN_FILES:
        parts = Path(pattern).parts
        if len(parts) == len(rel.parts) and all(
            fnmatch.fnmatchcase(p, q) for p, q in zip(rel.parts, parts, strict=True)
        ):
            return role, what, takes
    return None


def shipped(expects: Collection[str], shown: int = 3) -> str:
    """`` (the checkout's: '/…/datasets/grid.yaml')``: the checkout's own files of the
    first role in ``expects`` (``EXPECTED``'s keys), by absolute path, at most ``shown``
    then how many more; "" when it ships none. t116's walk: `rehearse --units x` and
    `demo --grid x` said only "no such file", with no word of the files the checkout has
    for them (`playbooks check DIR` named the library's)."""
    if not expects:
        return ""
    role = next(iter(expects))
    patterns = [pattern for pattern, own_role, _, _ in _OWN_FILES if own_role == role]
    if len(patterns) != 1:
        # None shipped, or in several places (the library's playbooks and the
        # rehearsal's): which fits is the command's to say.
        return ""
    found = [
        f
        for f in sorted(CHECKOUT.glob(patterns[0]))
        if f.is_file() and (own_file_role(f) or ("",))[0] == role
    ]
    if not found:
        return ""
    named = ", ".join(repr(str(f)) for f in found[:shown])
    more = f" and {len(found) - shown} more" if len(found) > shown else ""
    return f" (the checkout's: {named}{more})"


def mistaken(path: Path, expects: Collection[str]) -> str:
    """`` is the grid definition (…), not a reading or incident CSV: give it to <what
    takes it>`` when ``path`` is a checkout file whose role is none of ``expects``
    (keys of ``EXPECTED``, the first named in the message), else ""."""
    found = own_file_role(path)
    if found is None or found[0] in expects:
        return ""
    _, what, takes = found
    wanted = EXPECTED.get(next(iter(expects)), "another file")
    # t76: "it is for no command reads it" (a README, Python source) read as a slip.
    said = takes if takes.startswith("no command") else f"it is for {takes}"
    return f" is {what}, not {wanted}: {said}"


def file_version(path: str | Path) -> tuple[int, int] | None:
    """The file's (size in bytes, modification time in ns), or None if it cannot be
    looked up: compared before and after a read to learn that the file changed under it."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def changed_while_read(path: str | Path, was: tuple[int, int] | None) -> str | None:
    """``'<path> changed while it was read (<was> bytes, then <now>)'`` when ``path``'s
    ``file_version`` is no longer ``was`` (a feed still being written, truncated or
    rotated under a reader: t121, t180), else None (unchanged, or ``was`` unknown). The
    caller adds what the change cost and what to do."""
    now = file_version(path)
    if was is None or now == was:
        return None
    size = "" if now is None else f" ({was[0]:,} bytes, then {now[0]:,})"
    return f"{shown_path(path)} changed while it was read{size}"
