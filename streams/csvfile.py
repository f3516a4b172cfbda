"""Reading CSV files from the field: any byte sequence becomes records or ``file:line`` errors.

Pure file reading, shared by ``citybrain replay`` (streams/feeds.py), ``citybrain detect``
(citybrain/detect.py) and the data-set adapters (citybrain/adapters.py). The rules
(docs/events.md, "Canonical replay CSV"):

- UTF-8, plain or gzipped (``.gz``); a UTF-8 byte order mark (Excel writes one) is
  dropped, at the start of any record (files joined with `cat`); a UTF-16 file is refused at line 1;
- lines end in LF, CRLF or CR; empty lines, and lines of spaces and tabs alone, are not
  rows;
- RFC 4180 quoting, strictly: a quoted field may span lines, but a quote that is never
  closed, or closed before something other than a comma, makes its row bad;
- a quoted field that runs on to a line that reads as a row of its own, or as the start
  of one whose text spans lines (``looks_like_row``, by default a line as wide as the
  header, ``row_start``, whose first field is a time, right or wrong: ``time_shaped``;
  asked with the line's foreign bytes and NULs dropped, and then
  with its quotes dropped too) is a stray quote: its row is bad and reading resumes at
  that line, so one stray quote never swallows the rows after it, nor merges with that
  line's own fault (a bad byte, a NUL, another stray quote), which is reported under
  that line's number; unless the field closes later, within csv's field limit, on a
  line that reads as no row, into one record as wide as the header: that line is then
  the field's own text (``_text_after_all``: a report quoting a row across lines);
- a space between a comma and a field's opening quote (``a, "b"``: the quotes are then
  read as text, and a comma inside them splits the field) makes its row bad, naming the
  column (``_space_before_quote``; t188); so does a quote doubled in a field that is not
  quoted (``say ""hi""``: ``_doubled_unquoted``; t204);
- a bad record that leaves a quoted field open (a field over csv's limit, a line of it
  with a foreign byte or a NUL) is read past up to the line that closes the field, or one
  that reads as a row (``skip_open_field``): one bad row, not one per line of its text;
- a line with bytes that are not UTF-8 or a NUL byte is bad; the reason names the byte
  and its column (1-based, in bytes); a first line that is UTF-16 or UTF-32 (with a byte
  order mark, or without one: every other byte NUL) refuses the file, naming the encoding;
- a line longer than ``CITYBRAIN_CSV_MAX_LINE_BYTES`` (1 MiB) is bad: it is read past
  in blocks, never held whole, and reading goes on with the next line;
- a number field (``decimal``) is ASCII decimal notation: ``12.5``, ``-3``, ``1e-3``;
  Python's ``float`` would also take ``1_000``, ``１２`` (full-width) and other digits.

A bad row is a ``BadRow`` (file, line of the row's first line, reason), never an exception
from the csv, gzip or codecs modules; so every record read is either yielded or reported.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import math
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from io import BufferedIOBase
from pathlib import Path
from typing import IO, Any, cast

from playbooks.encodings import nul_block, utf8_slip
from streams.errors import FeedError, legacy_encoding, number_hint, show, shown_path, underflows

UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")
# Each digit is matched one way only, and never given back (possessive ``++``):
# ``[0-9]+\.?[0-9]*`` could split a run of digits anywhere, and a value of 100,000 digits
# then an x took hours to refuse (backtracking tried every split): replay and detect hung
# on one such row.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]++(?:\.[0-9]*+)?|\.[0-9]++)(?:[eE][+-]?[0-9]++)?")
BLOCK = 1 << 18  # bytes read at a time
# The longest line read, in bytes, unless CITYBRAIN_CSV_MAX_LINE_BYTES says otherwise (a
# setting of streams/settings.py): a line with no line end was gathered whole before csv
# saw it (trial 21: a 2 GB line grew memory by 2 GB).
MAX_LINE_BYTES = 1 << 20
MIN_LINE_BYTES = 1024
LINE_LIMIT_VARIABLE = "CITYBRAIN_CSV_MAX_LINE_BYTES"
_LINE_END = re.compile(rb"\r\n|\r|\n")
# A quote, then spaces or tabs up to a comma or the line's end: a closing quote padded.
_SPACED_CLOSE = re.compile(rb'"[ \t]+(?:,|\r|\n|$)')


def line_limit() -> int:
    """The longest line a CSV file may have, in bytes: the setting
    ``CITYBRAIN_CSV_MAX_LINE_BYTES`` (``Settings.csv_max_line_bytes``), by default
    ``MAX_LINE_BYTES`` (1 MiB). ``SettingsError`` naming the variable and its value when
    it is not a whole number of bytes, at least ``MIN_LINE_BYTES``."""
    from streams.settings import one_setting  # pydantic: only when a file is read

    limit: int = one_setting("csv_max_line_bytes")
    return limit


class _Overlong(bytes):
    """In place of a line longer than the limit, which was read past, not kept: its size
    in bytes (without its line end)."""

    size: int

    def __new__(cls, size: int) -> _Overlong:
        self = super().__new__(cls, b"")
        self.size = size
        return self


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that could not be read: ``str()`` is ``file:line: reason``."""

    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{shown_path(self.path)}:{self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Record:
    """One CSV record: the line it starts on (1-based), its fields, and whether a quoted
    field of it spans lines."""

    line: int
    fields: list[str]
    spans_lines: bool = False
    # The file's last line, with no line end: a file cut short (``cut_short``) ends so.
    unended: bool = False


class _BadLine(Exception):
    """Raised by the line source inside the csv reader: the current record is bad."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


class _Lines:
    """Decoded physical lines for ``csv.reader``, one at a time, tracking where each
    record starts. A continuation line (asked for while a record is open) that reads as
    a row of its own aborts the open record with ``_BadLine`` and is handed out again."""

    def __init__(
        self,
        raw: BufferedIOBase,
        path: Path,
        looks_like_row: Callable[[str], bool] | None,
        max_line: int = MAX_LINE_BYTES,
        width: list[int] | None = None,
    ) -> None:
        self._raw = raw
        self._width = width if width is not None else []  # the header's, once read
        self._max_line = max_line
        self._path = path
        self._chunks: list[bytes] = []  # lines read ahead, last first
        self._tail = b""  # an unfinished line at the end of the last block
        self._pushback: bytes | None = None  # a line handed back, undecoded
        self._looks_like_row = looks_like_row
        self.lineno = 0
        self.start = 0  # line the open record started on
        self.in_record = False
        self.exhausted = False
        self._wide_line = 0  # the last line read as UTF-16 text after UTF-8 ones
        # Quotes in the open record's lines so far: odd while a quoted field is open.
        self.quotes = 0
        self._record: list[bytes] = []  # the open record's lines so far
        # Whether the last line read has no line end (the file's last, cut short?).
        self.unended = False
        # Whether a line of the open record holds ` "`: a space before a quote, perhaps
        # one opening a field (``_space_before_quote``), looked for at C speed.
        self.spaced = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._pushback is not None:
            # The line starts a record of its own; its own faults are reported under it.
            data, self._pushback = self._pushback, None
            self.in_record, self.start = True, self.lineno
            self.quotes, self._record = data.count(b'"'), [data]
            self.spaced = b' "' in data
            self.unended = not data.endswith((b"\n", b"\r"))
            return self._decode(data)
        data = self._next_bytes()
        self.unended = not isinstance(data, _Overlong) and not data.endswith((b"\n", b"\r"))
        if not self.in_record and not isinstance(data, _Overlong):
            # The file's first line, and a line starting a record: files written with a
            # byte order mark and joined with `cat` carry one at each file's start (t162:
            # the second header was then a row whose timestamp is '\ufefftimestamp').
            while data.startswith(UTF8_BOM):  # a tool that adds one to a file that has one
                data = data[len(UTF8_BOM) :]
        self.lineno += 1
        if not self.in_record:
            self.in_record, self.start, self.quotes = True, self.lineno, 0
            self._record = []
            self.spaced = False
        if isinstance(data, _Overlong) or len(data) > self._max_line:
            size = data.size if isinstance(data, _Overlong) else len(data.rstrip(b"\r\n"))
            where = "" if self.lineno == self.start else f"line {self.lineno}: "
            self._abandon()
            raise _BadLine(
                self.start,
                f"{where}the line is {size:,} bytes, longer than the {self._max_line:,} a line "
                f"may have ({LINE_LIMIT_VARIABLE}): not read, reading goes on after it",
            )
        if self.start != self.lineno and self._starts_row(data) and not self._text_after_all(data):
            # Checked before decoding: a bad byte, a NUL or a stray quote of the line's own
            # must not merge it into the open record (issue 12 item 9).
            self._pushback = data
            raise _BadLine(
                self.start,
                "a quoted field opens here and is not closed before line "
                f"{self.lineno}, which reads as a row of its own "
                f"{self.backslash_quote() or '(a stray quote?)'}",
            )
        self.quotes += data.count(b'"')
        if b' "' in data:
            self.spaced = True
        self._record.append(data)
        return self._decode(data)

    def _text_after_all(self, data: bytes) -> bool:
        """Whether ``data``, a line of the open quoted field that reads as a row, is the
        field's text after all: the field closes within csv's field limit (in bytes,
        four per character) on a later line that does not read as a row (or on this one,
        which then reads as a row's start only), and the record
        from its first line to that one is one record as wide as the header. A report
        quoting a row in its text (``see:\n2024-05-27T03:10:10Z,…\nend"``) was cut there:
        the report lost, a row made of its text sent in its place (t162). The lines
        looked at are handed back, unread."""
        if self.quotes % 2 == 0 or not self._width:
            return False
        ahead = [data]
        quotes, size = self.quotes + data.count(b'"'), len(data)
        limit = 4 * csv.field_size_limit()
        try:
            while quotes % 2 and size <= limit:
                line = self._next_bytes()
                ahead.append(line)
                if isinstance(line, _Overlong) or len(line) > self._max_line:
                    return False
                quotes, size = quotes + line.count(b'"'), size + len(line)
        except StopIteration:
            return False
        finally:
            self._chunks.extend(reversed(ahead[1:]))  # the next line is the last one
        if quotes % 2:
            return False
        if len(ahead) == 1:
            # The line closes the field itself: text after all only if it reads as no
            # whole row, just a row's start, by the quote that closes the field (t204: a
            # report quoted right whose text is "…\n2024-05-27T03:10:10Z," was refused,
            # its second line taken for a row opening a quoted field).
            whole = split_line(data.decode("utf-8", "replace").replace("\x00", "").rstrip("\r\n"))
            if whole is not None and len(whole) == self._width[0]:
                return False
        elif self._starts_row(ahead[-1]):
            return False
        text = b"".join([*self._record, *ahead]).decode("utf-8", "replace")
        fields = split_line(text.replace("\x00", "").rstrip("\r\n"))
        return fields is not None and len(fields) == self._width[0]

    def skip_open_field(self) -> None:
        """After a bad record: read past the rest of a quoted field it left open (an odd
        number of quotes in its lines so far), up to the line that closes it or, as a
        stray quote's recovery does, one that reads as a row of its own (handed back).
        A field over csv's limit, or a line of it with a byte that is not UTF-8 or a NUL,
        left the field open, and each of its further lines was read as a row: one 10 MB
        text of 100,000 lines gave 98,691 bad rows, and its closing line opened a quoted
        field of its own (t162). Lines are read one at a time, never held."""
        if self._pushback is not None or self.quotes % 2 == 0:
            return
        while True:
            try:
                data = self._next_bytes()
            except StopIteration:
                return
            self.lineno += 1
            if isinstance(data, _Overlong) or len(data) > self._max_line:
                # Read past; its quotes are not counted, as a line read past block by
                # block has none known (the block size must not change what is read).
                continue
            if self._starts_row(data):
                self._pushback = data
                return
            self.quotes += data.count(b'"')
            if self.quotes % 2 == 0:
                return

    def _starts_row(self, data: bytes) -> bool:
        """Whether a continuation line reads as a row of its own, leniently: foreign bytes
        and NULs dropped, and failing that its quotes too (a second stray quote)."""
        if self._looks_like_row is None:
            return False
        text = data.decode("utf-8", "ignore").replace("\x00", "")
        if self._looks_like_row(text):
            return True
        return '"' in text and self._looks_like_row(text.replace('"', ""))

    def _next_bytes(self) -> bytes:
        while not self._chunks:
            if self.exhausted:
                raise StopIteration
            block = self._read_block()
            data = self._tail + block
            if not block:
                self.exhausted = True
                self._tail = b""
                if not data:
                    raise StopIteration
                # The bytes after a line read past may hold several lines.
                self._chunks = data.splitlines(keepends=True)[::-1]
                break
            # LF, CRLF and CR alone end lines. The last piece waits for the next block
            # unless it ends in LF (it may be a line's start, or a CR whose LF follows).
            pieces = data.splitlines(keepends=True)
            self._tail = b"" if pieces[-1].endswith(b"\n") else pieces.pop()
            if len(self._tail) > self._max_line:
                # No line end in sight: read past the rest of the line, keeping only its
                # size, so memory stays within a block whatever the line's length.
                size, self._tail = self._skip_line(len(self._tail), self._tail.endswith(b"\r"))
                pieces.append(_Overlong(size))
            self._chunks = pieces[::-1]
        return self._chunks.pop()

    def _read_block(self) -> bytes:
        try:
            return self._raw.read1(BLOCK)
        except (OSError, EOFError, zlib.error) as exc:
            # A truncated or corrupt .gz: nothing after this point can be read.
            self.exhausted = True
            raise _BadLine(self.lineno + 1, f"cannot read the file from here on: {exc}") from None

    def _skip_line(self, size: int, after_cr: bool) -> tuple[int, bytes]:
        """Reads past the rest of a line of which ``size`` bytes were read (the last a CR
        when ``after_cr``): (its size in bytes, without its line end; the bytes after it)."""
        if after_cr:
            size -= 1
        while True:
            block = self._read_block()
            if not block:
                self.exhausted = True
                return size, b""
            if after_cr:  # the line ended in a CR; an LF right after it belongs to it
                return size, block.removeprefix(b"\n")
            end = _LINE_END.search(block)
            if end is None:
                size += len(block)
                continue
            size += end.start()
            if end.group() == b"\r" and end.end() == len(block):
                after_cr = True
                continue
            return size, block[end.end() :]

    def _decode(self, data: bytes) -> str:
        if self.lineno == 1:
            encoding = wide_encoding(data)
            if encoding is not None:
                raise FeedError(
                    f"{shown_path(self._path)}:1: the file is {encoding}; save it as UTF-8"
                )
        nul = data.find(b"\x00")
        if nul >= 0 and data == b"\x00" and self._wide_line == self.lineno - 1:
            return ""  # the NUL of a UTF-16 line's LF: no line of its own
        if nul >= 0:
            self._abandon()
            block = nul_block(data, nul)
            if not block and self.lineno > 1 and wide_encoding(data.removeprefix(b"\x00")):
                self._wide_line = self.lineno
                # t180: UTF-16 after UTF-8 rows (Windows PowerShell's `>>` appends UTF-16
                # to a UTF-8 file): the file was refused whole as binary data.
                raise _BadLine(
                    self.start,
                    "the line is UTF-16 text, not UTF-8 (a part written in another "
                    "encoding: Windows PowerShell's >> appends UTF-16 to a file); save the "
                    "file as UTF-8",
                )
            if block:
                # t180: a file a crash left padded (its last block allocated, never written)
                # is rows of text, then NULs: the rows are read, the block is this line.
                raise _BadLine(self.start, f"{block} from {self._where(nul)}, not text")
            raise _BadLine(self.start, f"byte 0x00 (NUL) at {self._where(nul)}: not text")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._abandon()
            # t180: a slip of a UTF-8 writer (a last line cut inside a character, an
            # overlong form) is said as one, not guessed to be another encoding.
            slip = utf8_slip(data, exc.start)
            guess = slip if slip and slip.endswith((" or", "?")) else f"{slip};" if slip else ""
            guess = guess or f"a {legacy_encoding(data)} file?"
            raise _BadLine(
                self.start,
                f"byte 0x{data[exc.start]:02x} at {self._where(exc.start)} is not UTF-8 "
                f"({guess} save it as UTF-8)",
            ) from None

    def _where(self, offset: int) -> str:
        column = f"column {offset + 1}"
        return column if self.lineno == self.start else f"line {self.lineno}, {column}"

    @property
    def record_lines(self) -> list[bytes]:
        """The current record's lines as read, with their line ends."""
        return self._record

    def space_after_quote(self) -> str:
        """``(spaces between it and the comma? delete them)`` when a line of the open
        record has a quote followed by spaces or tabs and then a comma or the line's end
        (``"b" ,``: t188, told to write a quote as ""); else ``""``."""
        if not any(_SPACED_CLOSE.search(line) for line in self._record):
            return ""
        return "(spaces or tabs between it and the comma? delete them)"

    def backslash_quote(self) -> str:
        """``(a quote escaped with a backslash, …? write it as "")`` when the open record
        holds ``\\"``, as MySQL's exports and pandas' ``escapechar`` write a quote in a
        quoted field (RFC 4180 doubles it: ``\\"`` closes the field there); else ``""``."""
        if not any(b'\\"' in line for line in self._record):
            return ""
        return (
            "(a quote escaped with a backslash, \\\", as MySQL or pandas' escapechar write "
            'it? write it as "")'
        )

    def other_separator(self) -> str:
        """``(the file looks `;`-separated, its fields quoted: …)`` when the first quote
        that closes a field and is followed by something other than a comma is followed
        by another separator (``OTHER_SEPARATORS``): ``"timestamp";"value"``, as
        LibreOffice and many portals write a `;` file with every field quoted (t215: told
        to write a quote inside a quoted field as ""); else ``""``."""
        after = _after_closing_quote(b"".join(self._record).decode("utf-8", "replace"))
        name = OTHER_SEPARATORS.get(after or "")
        if name is None:
            return ""
        return (
            f"(the file looks {name}-separated, its fields quoted: save it with commas "
            "between fields and . as the decimal point)"
        )

    def _abandon(self) -> None:
        # The rest of the line is unread by csv; the record ends with it.
        self.in_record = False


def _after_closing_quote(text: str) -> str | None:
    """The character after the first quote in ``text`` that closes a quoted field and is
    followed by neither a comma nor a line end (RFC 4180, as csv reads it strictly), or
    None when there is none, or a comma outside quotes comes before it (a comma file's
    row, ``…,noise,"a";"b",…``: its separator is the comma)."""
    quoted, start, i = False, True, 0
    while i < len(text):
        c = text[i]
        if not quoted and c == ",":
            return None
        if quoted:
            if c == '"':
                if text[i + 1 : i + 2] == '"':
                    i += 1
                else:
                    quoted = False
                    nxt = text[i + 1 : i + 2]
                    if nxt and nxt not in ",\r\n":
                        return nxt
        elif c == '"' and start:
            quoted = True
        start = not quoted and c in ",\r\n"
        i += 1
    return None


def wide_encoding(first: bytes) -> str | None:
    """UTF-16 or UTF-32, as the first line shows it (a byte order mark, or NULs at every
    other or every fourth byte of ASCII text), or None."""
    if first.startswith(UTF32_BOMS):
        return "UTF-32 (it starts with a UTF-32 byte order mark)"
    if first.startswith(UTF16_BOMS):
        return "UTF-16 (it starts with a UTF-16 byte order mark)"
    # Without its line end: UTF-16LE's LF is `\n\x00`, split after the `\n`, which left
    # a short header (`timestamp,value`: 15 NULs in 31 bytes) short of half NULs.
    head = first.rstrip(b"\r\n")[:64]
    if len(head) >= 8 and head.count(0) * 2 >= len(head):
        # ASCII in UTF-16 is half NULs, in UTF-32 three quarters.
        wide = "UTF-32" if head.count(0) * 4 >= len(head) * 3 else "UTF-16"
        nuls = head.count(0)
        return f"{wide} without a byte order mark ({nuls} of its first {len(head)} bytes are NUL)"
    return None


def decimal(text: str, field: str = "value") -> float:
    """A finite number written in ASCII decimal notation (surrounding spaces allowed).
    Raises ValueError naming ``field`` and the text (its first 80 characters: ``show``)
    otherwise (``nan``, ``inf``, ``1e400`` as not finite; ``1e-400``, not zero but read
    as 0.0; ``1_000``, non-ASCII digits, ``0x10`` as not a number)."""
    if not _DECIMAL.fullmatch(text.strip(" \t")):
        if text.strip(" \t").lstrip("+-").lower() in ("nan", "inf", "infinity"):
            raise ValueError(f'field "{field}" is {show(text)}, expected a finite number')
        raise ValueError(
            f'field "{field}" is {show(text)}, expected a number in decimal notation '
            f"(ASCII digits, a point, an exponent: 12.5, -3, 1e-3){number_hint(text)}"
        )
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f'field "{field}" is {show(text)}, expected a finite number')
    if underflows(text, value):
        # Read as 0.0 (t183): replay sent it on as a reading of 0, where the worker
        # refuses the number as written.
        raise ValueError(
            f'field "{field}" is {show(text)}, not zero as written but too small for a '
            f"double (under about 4.9e-324): write 0 if zero is meant"
        )
    return value


def gzip_name(path: Path) -> bool:
    """Whether the file's name says gzip: it ends in ``.gz``, in any case (``DATA.CSV.GZ``,
    as Windows tools and FTP exports write it, was read as plain bytes and refused as
    "gzip-compressed; name it DATA.CSV.GZ.gz", t121)."""
    return path.name.lower().endswith(".gz")


def csv_name(path: Path) -> bool:
    """Whether the file's name is a CSV's, plain or gzip: ``.csv`` or ``.csv.gz`` in any
    case."""
    return path.name.lower().endswith((".csv", ".csv.gz"))


def open_binary(path: Path) -> BufferedIOBase:
    """The file's bytes, decompressed when its name ends in ``.gz`` (``gzip_name``);
    ``FeedError`` if it cannot be opened."""
    try:
        if gzip_name(path):
            return cast(BufferedIOBase, gzip.open(path, "rb"))
        return path.open("rb")
    except OSError as exc:
        raise FeedError(f"{shown_path(path)}: cannot read: {exc.strerror or exc}") from None


def read_records(
    path: str | Path,
    looks_like_row: Callable[[str], bool] | None = None,
    max_line_bytes: int | None = None,
) -> Iterator[Record | BadRow]:
    """Every record of the file in order (the header too, as the first record), or a
    ``BadRow`` in place of each one that cannot be read. ``looks_like_row(line)`` says
    whether a line would start a row (for stray-quote recovery; see the module doc; by
    default, ``row_start`` of the header's width: a whole row or a row's start). A
    line longer than ``max_line_bytes`` (default ``line_limit()``) is a ``BadRow``, read
    past without being kept.

    Raises ``FeedError`` only for a file that cannot be opened or is UTF-16, and
    ``SettingsError`` for a bad ``CITYBRAIN_CSV_MAX_LINE_BYTES``."""
    path = Path(path)
    limit = line_limit() if max_line_bytes is None else max_line_bytes
    width: list[int] = []  # the header's number of fields, once read

    def as_wide_as_the_header(text: str) -> bool:
        return bool(width) and row_start(text, width[0]) is not None

    with open_binary(path) as raw:
        # Every reader recovers from a stray quote, by default at a line that starts a
        # record as wide as the header (rehearse gave no rule, and one stray quote
        # swallowed the reports after it up to the next quote, unsaid).
        lines = _Lines(raw, path, looks_like_row or as_wide_as_the_header, limit, width)
        reader = csv.reader(lines, strict=True)
        while True:
            lines.in_record = False
            try:
                fields = next(reader)
            except StopIteration:
                return
            except _BadLine as exc:
                # Reading goes on with the next line (or the one handed back), past the
                # rest of a quoted field the bad record left open.
                yield BadRow(path, exc.line, exc.reason)
                lines.skip_open_field()
            except csv.Error as exc:
                yield BadRow(path, lines.start, _csv_reason(str(exc), lines))
                lines.skip_open_field()
            else:
                # An empty line is not a row, nor one of spaces and tabs alone (t162: a
                # file ending in a line of spaces stopped a replay, "row has 1 fields").
                blank = len(fields) == 1 and lines.lineno == lines.start and _blank(fields[0])
                # DOS's end-of-file mark (Ctrl-Z, 0x1A), which old Windows tools write
                # after the last line: the end of the file, not a row (t215: a bad row
                # of one field, "cut short?", that stopped a replay of a whole file).
                blank = blank or (fields == [DOS_EOF] and lines.unended)
                if fields and not blank:
                    # Most rows have no ` "` (``lines.spaced``), and are not looked at.
                    fault = (
                        _space_before_quote(fields, lines.record_lines) if lines.spaced else None
                    )
                    if fault is None and lines.quotes >= 2:
                        fault = _doubled_unquoted(fields, lines.record_lines)
                    if fault is not None:
                        yield BadRow(path, lines.start, fault)
                        continue
                    if not width:
                        width.append(len(fields))
                    yield Record(lines.start, fields, lines.lineno != lines.start, lines.unended)


def _space_before_quote(fields: list[str], raw: list[bytes]) -> str | None:
    """Why a record (its ``fields``, read from the lines ``raw``) is bad for a space
    between a comma and a field's opening quote, or None. RFC 4180 (and Python's csv, and
    pandas) then read the quotes as text: ``a, "b"`` is the field `` "b"``, and ``a, "b,
    c"`` the two `` "b`` and `` c"`` (t188: a report's text was sent as `` "loud music"``,
    quotes and all; with a comma inside, the row was one field too wide, said as no
    more). A field quoted right whose text starts with a space and a quote (``" ""x"" y"``)
    reads alike with spaces after commas skipped, so is not refused."""
    at = next((i for i, f in enumerate(fields) if f[:1] == " " and f.lstrip(" ")[:1] == '"'), None)
    if at is None:
        return None
    text = b"".join(raw).decode("utf-8", "replace")
    try:
        # Lines as csv cuts them (at CR and LF only: str.splitlines cuts at \f too).
        skipped = next(csv.reader(io.StringIO(text, newline=""), skipinitialspace=True), [])
    except csv.Error:
        skipped = []
    if skipped == fields:
        return None
    split = " (and a comma inside them split it)" if len(skipped) < len(fields) else ""
    return (
        f"column {at + 1} is {show(fields[at])}: a space before its opening quote, so its "
        f"quotes were read as text{split}: delete the spaces after the commas"
    )


def _doubled_unquoted(fields: list[str], raw: list[bytes]) -> str | None:
    (
        """Why a record (its ``fields``, read from the lines ``raw``) is bad for a quote
    doubled in a field that is not quoted, or None. RFC 4180 doubles a quote only inside
    a quoted field; a writer that doubles them without quoting the field (``say
    ""hi""``) means one quote each, but csv, pandas and Excel read both as text (t204: a
    report's text was sent as ``say ""hi""``, unsaid). A field quoted right holding two
    quotes in a row (``"a """
        "b"
        """"``) is written with four, and is not refused."""
    )
    for at, text in enumerate(fields):
        if '""' not in text:
            continue
        written = b"".join(raw).decode("utf-8", "replace")
        if '"' + text.replace('"', '""') + '"' in written:
            continue  # quoted, its quotes doubled as RFC 4180 writes them
        return (
            f"column {at + 1} is {show(text)}: a quote doubled in a field that is not "
            "quoted, so both are read as text: put the field in quotes, or write each "
            "quote once"
        )
    return None


DOS_EOF = "\x1a"


def _blank(text: str) -> bool:
    """Whether ``text`` is spaces and tabs alone (or nothing)."""
    return not text.strip(" \t")


def _csv_reason(message: str, lines: _Lines) -> str:
    if message.startswith("unexpected end of data"):
        return "a quoted field opens here and is never closed (it runs to the end of the file)"
    if message.startswith("',' expected after '\"'"):
        where = "" if lines.lineno == lines.start else f"line {lines.lineno}: "
        hint = (
            lines.backslash_quote()
            or lines.space_after_quote()
            or lines.other_separator()
            or '(write a quote inside a quoted field as "")'
        )
        return (
            f"{where}a quoted field's closing quote is followed by something other than a "
            f"comma {hint}"
        )
    if message.startswith("field larger than field limit"):
        return f"a field is longer than {csv.field_size_limit():,} characters"
    return f"not valid CSV: {message}"


# Separators spreadsheets save "CSV" with (`;` where the decimal mark is a comma), named
# as a message names them.
OTHER_SEPARATORS = {";": "`;`", "\t": "tab", "|": "`|`"}


def separator_hint(fields: Sequence[str]) -> str:
    """`` (the file looks `;`-separated: save it with commas between fields and . as the
    decimal point)`` for a header row read as comma-separated (``fields``) that another
    separator (``OTHER_SEPARATORS``) splits into more fields; "" otherwise. The tail of
    every refused CSV header (a newcomer's `timestamp;value` was told only what was
    expected). An Excel ``sep=`` line or a ``#`` comment in place of the header is said
    as one."""
    text = ",".join(fields)
    first = text.lstrip()
    if first.lower().startswith("sep="):
        # Excel's line naming the separator (it writes one when asked to): t162. One
        # naming another separator says the rest too (t188: deleting it only brought the
        # next refusal, of a `;`-separated header).
        other = OTHER_SEPARATORS.get(first[4:5])
        also = (
            f"; and the file is {other}-separated: save it with commas between fields and . "
            "as the decimal point"
            if other
            else ""
        )
        return f" (Excel's {show(first)} line: delete it, the first line must be the header{also})"
    if first.startswith("#"):
        return " (a comment line? delete it: the first line must be the header)"
    sep = max(OTHER_SEPARATORS, key=text.count)
    if text.count(sep) + 1 <= len(fields):
        return ""
    return (
        f" (the file looks {OTHER_SEPARATORS[sep]}-separated: save it with commas between "
        "fields and . as the decimal point)"
    )


def repeated_column(names: Sequence[str]) -> str | None:
    """Why a header row (``names``, as the reader compares them) is refused for giving a
    column name twice: ``the header gives column 'value' twice (columns 2 and 3): which is
    meant? Rename or drop one``; None when every name is given once. Every reader takes one
    of the two without a word (pandas the first, renaming the second ``value.1``; a
    reader by position the first), so which was meant cannot be known."""
    first: dict[str, int] = {}
    for at, name in enumerate(names, start=1):
        if name in first:
            return (
                f"the header gives column {name!r} twice (columns {first[name]} and {at}): "
                "which is meant? Rename or drop one"
            )
        first[name] = at
    return None


class HeaderRepeats:
    """Header rows met again after a file's header (two exports joined with `cat`), and
    the rows under one unlike it. ``reason(record)`` says why a record after the header
    is not read, or None for a row to read:

    - a header row again (its ``at`` column, the timestamp's, reads ``timestamp``, in
      any case, spaces around it) naming the header's columns alike (in any case, spaces
      around): ``the header row again (files joined together?)``;
    - one naming them otherwise (another order, other columns): said as such, and every
      row under it, up to a header row like the file's, is not read either (naming that
      header's line): read by the file's header its columns would be taken for others.
      t188: an export in another column order joined to a file had its sensor_id and
      grid_cell read swapped, unsaid, once the header between them was skipped.
    """

    def __init__(self, header: Record, at: int = 0) -> None:
        self._line = header.line
        self._names = _names(header.fields)
        self._at = at
        self._under: int | None = None  # the line of a header unlike the file's, if read

    def reason(self, record: Record) -> str | None:
        """Why ``record`` (a record after the header) is not read, or None."""
        fields = record.fields
        if len(fields) > self._at and fields[self._at].strip().lower() == "timestamp":
            names = _names(fields)
            if names == self._names:
                self._under = None
                return "the header row again (files joined together?)"
            self._under = record.line
            unlike = (
                "the same columns in another order"
                if sorted(names) == sorted(self._names)
                else _columns_apart(names, self._names)
            )
            return (
                f"a header row again, unlike line {self._line}'s: {unlike} (files joined "
                f"together?): the rows under it are not read, as line {self._line}'s header "
                "would take their columns for others; put them in a file of their own"
            )
        if self._under is not None:
            return (
                f"a row under the header row at line {self._under}, unlike line "
                f"{self._line}'s: not read, as line {self._line}'s header would take its "
                "columns for others; put the rows under that header in a file of their own"
            )
        return None


def _names(fields: Sequence[str]) -> list[str]:
    """A header's column names as compared: spaces around them dropped, lower-cased."""
    return [name.strip().lower() for name in fields]


def _columns_apart(names: list[str], header: list[str]) -> str:
    """How a header row's ``names`` differ from the file's ``header``: ``other columns
    ('station' for 'sensor')``, ``more columns ('station')``, ``fewer columns (no
    'station')``, or ``'text' given twice``."""
    twice = [name for at, name in enumerate(names) if name in names[:at]]
    if twice:
        return f"{show(twice[0])} given twice"
    extra = ", ".join(show(name) for name in names if name not in header)
    missing = ", ".join(show(name) for name in header if name not in names)
    if extra and missing:
        return f"other columns ({extra} for {missing})"
    if extra:
        return f"more columns ({extra})"
    if missing:
        return f"fewer columns (no {missing})"
    return "the same columns"  # not reached: names alike are the header again


def field_count_reason(fields: list[str], expected: int) -> str | None:
    """Why a record has the wrong number of fields, or None: ``row has 7 fields, expected
    6``, and when the one over is an empty last field, `` (a comma at its end? delete
    it)`` (t188: a spreadsheet's or a script's trailing commas were only counted)."""
    if len(fields) == expected:
        return None
    reason = f"row has {len(fields)} fields, expected {expected}"
    if len(fields) == expected + 1 and not fields[-1].strip(" \t"):
        return reason + " (a comma at its end? delete it)"
    if len(fields) > expected and any(f.endswith("\\") for f in fields[:-1]):
        # MySQL's SELECT … INTO OUTFILE escapes a comma in a field it does not enclose.
        return f'{reason} (a comma escaped with a backslash, \\,? quote the field instead: "a, b")'
    text = ",".join(fields)
    for sep, name in OTHER_SEPARATORS.items():
        if len(fields) < expected and text.count(sep) + 1 == expected:
            # A row of another separator under a comma header (t188: `;` with a decimal
            # comma read as 2 fields, said as no more).
            return (
                f"{reason} (the row looks {name}-separated: write it with commas between "
                "fields and . as the decimal point)"
            )
    return reason


def cut_short(record: Record) -> str:
    """What to add to the reason a record is bad when it is the file's last line and has
    no line end: `` (the file's last line, with no line end: cut short? …)``, else "".
    A file copied, downloaded or read while it was written ends part-way through a row
    (t204: ``row has 3 fields, expected 6`` alone, nothing said of the file's end); a
    last line without a line end that reads as a row is taken, as many tools write one."""
    if not record.unended:
        return ""
    return (
        " (the file's last line, with no line end: cut short? a file copied, downloaded or "
        "read while it was written ends so; get it whole)"
    )


def comment_line(fields: Sequence[str]) -> str | None:
    """Why a record whose first field starts with ``#`` is no row, or None: ``a comment
    line ('# exported …'): the format has none; delete it (a row commented out: delete its
    #)``. t188: a comment line in a file was "row has 1 fields, expected 6", a row
    commented out a timestamp '#2024-…' that is not one, neither saying what the line
    is. An Excel ``sep=`` line in the middle (a second export joined on) is said as one
    too. Only for files whose rows start with a field that is never text (a timestamp)."""
    first = fields[0].lstrip(" \t") if fields else ""
    if first.lower().startswith("sep=") and len(fields) <= 2:
        # Excel's separator line of a second export joined on (t188); `sep=,` reads as 2.
        return (
            f"Excel's {show(','.join(fields))} line (files joined together?): delete it, and "
            "check the rows after it are separated by commas"
        )
    if not first.startswith("#"):
        return None
    return (
        f"a comment line ({show(','.join(fields))}): the format has none; delete it (a row "
        "commented out: delete its #)"
    )


class RowWriter:
    """CSV rows written with LF line ends, which every reader here reads back field for
    field: ``csv.writer(fh, lineterminator="\n")`` quotes a field holding its line
    terminator, a comma or a quote, but not one holding a lone CR, which it writes bare;
    every CSV reader (this module's, pandas', a spreadsheet's) ends the line there, so a
    text ``a\rb`` came back as two rows (t169: a detect output whose extra column held
    one, a public data file's quoted field holding one refused as "3 rows read, 2
    expected"). A row with a CR in a field is written with every field quoted.
    ``fh`` is a text file opened with ``newline=""`` (or a ``StringIO``)."""

    def __init__(self, fh: IO[str]) -> None:
        self._plain = csv.writer(fh, lineterminator="\n")
        self._quoted = csv.writer(fh, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def writerow(self, fields: Sequence[Any]) -> None:
        """Writes one row; its fields are text, numbers (written as ``str`` writes them)
        or None (an empty field)."""
        try:
            cr = "\r" in "".join(fields)  # a row of text, checked at C speed (detect's)
        except TypeError:  # numbers or None among the fields
            cr = any(isinstance(f, str) and "\r" in f for f in fields)
        if cr:
            self._quoted.writerow(fields)
        else:
            self._plain.writerow(fields)

    def writerows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Writes the rows; a block of rows of text without a CR is checked and written at
        C speed (detect writes a chunk of scores at a time)."""
        block = rows if isinstance(rows, list) else list(rows)
        try:
            clean = "\r" not in "".join(itertools.chain.from_iterable(block))
        except TypeError:  # numbers or None among the fields: row by row
            clean = False
        if clean:
            self._plain.writerows(block)
            return
        for fields in block:
            self.writerow(fields)


# What a time written by any tool starts as, right or wrong: a date with `-`, `/` or `.`
# (year first or last: `2026-11-01`, `01/11/2026`, `13.03.2016`), or epoch digits.
_TIME_SHAPED = re.compile(r"\s*(?:\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|\d{9,19}(?:\.\d*)?\s*$)")


def time_shaped(text: str) -> bool:
    """Whether a field reads as a time someone meant to write, in whatever form: stray-
    quote recovery takes a line whose first field is one as a row of its own, faults and
    all. A row whose timestamp lacks its zone, or is day first, did not read as a row, and
    a stray quote just before it swallowed it into its own bad row, unsaid (t215)."""
    return _TIME_SHAPED.match(text) is not None


def split_line(text: str) -> list[str] | None:
    """One line's fields by the same strict rules, or None if it is not a whole record."""
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error:
        return None
    return rows[0] if len(rows) == 1 else None


def row_start(text: str, width: int | None = None) -> list[str] | None:
    """The fields of a line that could start a record of ``width`` fields (of any width
    when None), or None: a whole record of that many fields, or the first fields of one
    whose last field, quoted, runs on past the line (a text spanning lines; the rest of
    the record is below), up to that many and at least two (the first field is no text
    that spans lines). Stray-quote recovery asks this of each line a quoted field runs
    on to: a line that only starts a record counts too, or one stray quote swallowed the
    next row whenever that row's own text spans lines (the row was lost, and its second
    line reported as a row of too few fields)."""
    fields = split_line(text)
    if fields is not None:
        return fields if width is None or len(fields) == width else None
    # Closing the quote the line leaves open reads what the line holds of the record.
    fields = split_line(text + '"')
    if fields is None or len(fields) < 2 or (width is not None and len(fields) > width):
        return None
    return fields
