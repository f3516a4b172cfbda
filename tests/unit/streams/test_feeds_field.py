"""Files from the field (issue 12 item 9): any bytes give rows or ``file:line: reason``.

The field cases (../shared/field-cases/replay-*) are committed under
tests/fixtures/field-cases/; their siblings (other encodings, csv dialect faults, empty and
header-only files, joined files, oversized rows) are here too, and a hypothesis fuzz over
generated files checks the invariant for every reader.
"""

from __future__ import annotations

import gzip
import re
import time
import tracemalloc
from pathlib import Path
from unittest.mock import patch

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import csvfile
from streams.csvfile import BadRow, Record, read_records
from streams.errors import FeedError, SettingsError
from streams.events import MAX_MESSAGE_BYTES, IncidentReport, Reading
from streams.feeds import Replayer, event_key, load_events, looks_like_row, read_canonical
from streams.partitioning import PackTooLargeError, ReadingPacker, alone_in_pack_bytes
from streams.settings import Settings, load_settings
from tests.services import FIXTURES

CASES = FIXTURES / "field-cases"
READINGS = "timestamp,sensor_id,kind,value,unit,grid_cell\n"
INCIDENTS = "timestamp,report_id,category,text,source,grid_cell\n"
ROW = "2024-05-27T03:10:10Z,s1,pm25,1.5,ug/m3,c1\n"
INCIDENT = "2024-05-27T03:10:10Z,r1,Noise,loud music,app,c1\n"


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    raw = data.encode() if isinstance(data, str) else data
    path.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    return path


def read_skip(path: Path) -> tuple[list[Reading | IncidentReport], list[BadRow]]:
    bad: list[BadRow] = []
    return load_events([path], on_error="skip", bad_rows=bad), bad


# -- the field cases ------------------------------------------------------------------


def test_stray_quote_is_a_bad_row_and_does_not_swallow_the_next_one() -> None:
    path = CASES / "stray-quote-incidents.csv"
    with pytest.raises(FeedError) as info:
        load_events([path])
    assert str(info.value).startswith(f"{path}:3: a quoted field opens here")
    events, bad = read_skip(path)
    assert [b.line for b in bad] == [3]
    # Five reports: four read as their own rows (the one after the stray quote too).
    assert len(events) == 4
    assert all(isinstance(e, IncidentReport) and e.text.endswith("Party") for e in events)
    assert len(events) + len(bad) == 5


def test_latin1_byte_is_a_bad_row_naming_byte_and_column() -> None:
    path = CASES / "latin1-incidents.csv"
    with pytest.raises(FeedError) as info:
        load_events([path])
    message = str(info.value)
    assert message.startswith(f"{path}:3: byte 0xf1 at column 71 is not UTF-8")
    events, bad = read_skip(path)
    assert [e.report_id for e in events if isinstance(e, IncidentReport)] == [
        "nyc311-1",
        "nyc311-4",
    ]
    assert [b.line for b in bad] == [3]


def _pack20k() -> list[Reading]:
    # As ../shared/field-cases/replay-pack-too-large/make_csv.py writes them.
    t0 = 1_556_668_800.0
    return [
        Reading(
            t0 + 60 * i,
            "usgs-01589330-discharge",
            "discharge",
            100.0 + i % 7,
            "ft3/s",
            "md-gauge-01589330",
        )
        for i in range(20_000)
    ]


@pytest.mark.parametrize("size", [5000, 8000, 10_000])
def test_packs_are_split_below_the_message_limit(size: int) -> None:
    readings = _pack20k()
    packs = list(ReadingPacker(4, size).pack_all(readings))
    assert all(len(value) <= MAX_MESSAGE_BYTES for _, _, value in packs)
    docs = [orjson.loads(value) for _, _, value in packs]
    assert all(d["schema"] == "readings/1" and 1 <= len(d["readings"]) <= size for d in docs)
    sent = [r["value"] for d in docs for r in d["readings"]]
    assert sent == [r.value for r in readings]  # every reading, once, in order


def test_packs_bytes_equal_what_orjson_writes() -> None:
    reading = _pack20k()[0]
    [(_, _, value)] = ReadingPacker(1, 3).pack_all([reading, reading])
    doc = orjson.loads(value)
    assert value == orjson.dumps(doc)


def test_one_reading_larger_than_a_pack_may_be_is_refused_alone() -> None:
    packer = ReadingPacker(2, 100, max_bytes=2048)
    small = _pack20k()[0]
    huge = Reading(small.ts, "s" * 3000, "pm25", 1.0, "ug/m3", "c1")
    assert packer.add(small) == []
    with pytest.raises(PackTooLargeError, match=r"is 3,\d{3} bytes packed, more than a pack"):
        packer.add(huge)
    [(_, _, value)] = packer.flush()
    assert len(orjson.loads(value)["readings"]) == 1


# -- siblings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "lines", "reason"),
    [
        # Windows-1252 curly quote, and a truncated UTF-8 sequence
        (READINGS.encode() + b"2024-05-27T03:10:10Z,s\x93,pm25,1,ug/m3,c1\n", [2], "byte 0x93"),
        (READINGS.encode() + b"2024-05-27T03:10:10Z,s\xc3,pm25,1,ug/m3,c1\n", [2], "byte 0xc3"),
        (READINGS.encode() + b"2024-05-27T03:10:10Z,s\x00,pm25,1,ug/m3,c1\n", [2], "NUL"),
        # a closing quote followed by text
        (READINGS + '2024-05-27T03:10:10Z,"s1"x,pm25,1,ug/m3,c1\n' + ROW, [2], "closing quote"),
        # an unclosed quote in the last row runs to the end of the file
        (READINGS + ROW + '2024-05-27T03:10:10Z,"s1,pm25,1,ug/m3,c1\n', [3], "never closed"),
        # a bare CR inside an unquoted field
        (READINGS + "2024-05-27T03:10:10Z,s1,pm25,1\r2,ug/m3,c1\n", [2, 3], "fields"),
        # a header row again: files joined with cat
        (READINGS + ROW + READINGS + ROW, [3], "header row again"),
        # wrong column counts
        (READINGS + "2024-05-27T03:10:10Z,s1,pm25,1\n" + ROW + ROW + ",,,,,,,\n", [2, 5], "fields"),
        # a huge field
        (READINGS + "2024-05-27T03:10:10Z," + "x" * 200_000 + ",pm25,1,ug/m3,c1\n" + ROW, [2], ""),
    ],
)
def test_bad_rows_of_every_kind_name_file_and_line(
    tmp_path: Path, data: bytes | str, lines: list[int], reason: str
) -> None:
    path = write(tmp_path, "f.csv", data)
    events, bad = read_skip(path)
    assert [b.line for b in bad] == lines
    assert reason in bad[0].reason
    with pytest.raises(FeedError, match=rf"^{re.escape(str(path))}:{lines[0]}: "):
        load_events([path])
    rows = sum(1 for _ in read_records(path, looks_like_row(6))) - 1
    assert len(events) + len(bad) == rows


def test_a_stray_quote_before_a_last_row_without_newline(tmp_path: Path) -> None:
    text = INCIDENTS + '2024-05-27T03:10:10Z,r1,Noise,"loud,app,c1\n' + INCIDENT.rstrip("\n")
    events, bad = read_skip(write(tmp_path, "i.csv", text))
    assert [b.line for b in bad] == [2]
    assert [e.report_id for e in events if isinstance(e, IncidentReport)] == ["r1"]
    assert events[0].text == "loud music"


def test_a_quoted_field_may_span_lines(tmp_path: Path) -> None:
    text = INCIDENTS + '2024-05-27T03:10:10Z,r1,Noise,"loud\nmusic, ""all"" night",app,c1\n'
    path = write(tmp_path, "i.csv", text + INCIDENT)
    events = load_events([path])
    assert [e.text for e in events if isinstance(e, IncidentReport)] == [
        'loud\nmusic, "all" night',
        "loud music",
    ]


@pytest.mark.parametrize("damage", ['"loud', '"', 'loud "music', '"""'])
def test_a_stray_quote_does_not_swallow_a_next_row_whose_text_spans_lines(
    tmp_path: Path, damage: str
) -> None:
    """A line that only starts a row (its text, quoted, runs on to the next line) ends a
    stray quote's record too: it read as no row of its own (too few fields), so report
    r2, whose text spans two lines, was swallowed and its second line was a bad row."""
    text = (
        INCIDENTS
        + f"2024-05-27T03:10:10Z,r1,Noise,{damage},app,c1\n"
        + '2024-05-27T03:11:10Z,r2,Noise,"loud\nmusic, all night",app,c1\n'
        + INCIDENT.replace("r1", "r3")
    )
    events, bad = read_skip(write(tmp_path, "i.csv", text))
    assert [b.line for b in bad] == [2] if damage != 'loud "music' else not bad
    reports = {e.report_id: e.text for e in events if isinstance(e, IncidentReport)}
    assert reports["r2"] == "loud\nmusic, all night" and "r3" in reports


@pytest.mark.parametrize(
    ("line", "width", "fields"),
    [
        ("a,b,c", 3, ["a", "b", "c"]),
        ("a,b,c", 4, None),
        ('a,"b', 3, ["a", "b"]),  # the start of a row of 3 whose second field spans lines
        ('a,"b', None, ["a", "b"]),
        ('a,b,c,"d', 3, None),  # already wider than the header
        ('"a', 3, None),  # a first field spanning lines starts no row
        ('a,"b""', 3, ["a", 'b"']),  # an escaped quote, the field still open
        ('a,"b"c', 3, None),  # a closing quote before text: no row
    ],
)
def test_row_start(line: str, width: int | None, fields: list[str] | None) -> None:
    assert csvfile.row_start(line, width) == fields


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbf" + READINGS.encode() + ROW.encode(),  # Excel's UTF-8 BOM
        (READINGS + ROW).replace("\n", "\r\n").encode(),  # CRLF
        (READINGS + ROW).replace("\n", "\r").encode(),  # old Mac CR
        (READINGS + ROW + "\n\n").encode(),  # trailing empty lines
        (READINGS + ROW).rstrip("\n").encode(),  # no final newline
    ],
)
def test_common_encodings_and_line_ends_read_the_same(tmp_path: Path, data: bytes) -> None:
    for name in ("r.csv", "r.csv.gz"):
        events = load_events([write(tmp_path, name, data)])
        assert events == [Reading(1716779410.0, "s1", "pm25", 1.5, "ug/m3", "c1")]


def test_empty_header_only_and_utf16_files(tmp_path: Path) -> None:
    empty = write(tmp_path, "empty.csv", b"")
    with pytest.raises(FeedError, match=r"empty.csv:1: the file is empty"):
        load_events([empty])
    assert load_events([write(tmp_path, "header.csv", READINGS)]) == []
    utf16 = write(tmp_path, "u16.csv", (READINGS + ROW).encode("utf-16"))
    with pytest.raises(FeedError, match=r"u16.csv:1: the file is UTF-16"):
        load_events([utf16], on_error="skip")
    dup = write(tmp_path, "dup.csv", READINGS.replace("unit", "kind") + ROW)
    with pytest.raises(FeedError, match=r"dup.csv:1: header is"):
        load_events([dup])


def test_a_truncated_gzip_is_a_bad_row_not_a_traceback(tmp_path: Path) -> None:
    whole = gzip.compress((READINGS + ROW * 2000).encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    events, bad = read_skip(path)
    assert len(bad) == 1 and "cannot read the file from here on" in bad[0].reason
    assert 0 < len(events) < 2000


def test_a_row_larger_than_a_message_is_a_bad_row(tmp_path: Path) -> None:
    # Under the csv field limit and the text's own bound, over the message limit given.
    big = "2024-05-27T03:10:10Z,r2,Noise," + "y" * 9_000 + ",app,c1\n"
    path = write(tmp_path, "big.csv", INCIDENTS + INCIDENT + big + INCIDENT)
    bad: list[BadRow] = []
    events = list(read_canonical(path, bad.append, max_message_bytes=5_000))
    assert len(events) == 2
    assert [b.line for b in bad] == [3]
    assert "more than the 5,000 a Kafka message may hold" in bad[0].reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # a text over csv's field limit, of 100,000 lines
        (b'"' + b"y" * 99 + b"\n" + (b"y" * 99 + b"\n") * 100_000 + b'"', "longer than 131,072"),
        # a byte that is not UTF-8, or a NUL, on the text's first, second or last line
        (b'"caf\xe9 is\nloud\nvery"', "byte 0xe9 at column 35"),
        (b'"cafe is\nlo\xe9ud\nvery"', "byte 0xe9 at line 4, column 3"),
        (b'"cafe is\nlo\x00ud\nvery"', "NUL) at line 4, column 3"),
        (b'"cafe is\nloud\nv\xe9ry"', "byte 0xe9 at line 5, column 2"),
    ],
)
def test_a_bad_text_spanning_lines_is_one_bad_row_and_the_next_row_its_own(
    tmp_path: Path, text: bytes, reason: str
) -> None:
    """t162: a bad row left its quoted text open, and each further line of the text was
    read as a row (a 10 MB text of 100,000 lines gave 98,691 bad rows, its closing line
    opening a quoted field of its own). The rest of the text is read past: one bad row."""
    row = b"2024-05-27T03:10:10Z,r2,Noise," + text + b",app,c1\n"
    path = write(
        tmp_path, "t.csv", INCIDENTS.encode() + INCIDENT.encode() + row + INCIDENT.encode()
    )
    events, bad = read_skip(path)
    assert [b.line for b in bad] == [3] and reason in bad[0].reason
    assert [e.report_id for e in events if isinstance(e, IncidentReport)] == ["r1", "r1"]


def test_a_bad_row_with_a_stray_quote_still_gives_the_next_row_back(tmp_path: Path) -> None:
    """The rest of an open text is read past only up to a line that reads as a row."""
    row = b'2024-05-27T03:10:10Z,r2,Noise,"caf\xe9 oops,app,c1\n'
    path = write(tmp_path, "t.csv", INCIDENTS.encode() + row + INCIDENT.encode() * 2)
    events, bad = read_skip(path)
    assert [b.line for b in bad] == [2] and len(events) == 2


@pytest.mark.parametrize(
    "quoted",
    [
        # a report quoting an earlier one, whole and as a row's start
        "2024-05-27T03:09:10Z,r0,Noise,loud music,app,c1",
        '2024-05-27T03:09:10Z,r0,Noise,""loud',
    ],
)
def test_a_text_spanning_lines_that_quotes_a_row_is_kept_whole(tmp_path: Path, quoted: str) -> None:
    """t162: a report whose quoted text spans lines, one of them reading as a row, was
    cut there as a stray quote: the report lost (a bad row), a row made of its text sent
    in its place, and its last line a second bad row. A line that reads as a row is the
    text's own when the text closes later, on a line that is no row, into one record as
    wide as the header."""
    text = f'"see the last one:\n{quoted}\nstill going"'
    row = f"2024-05-27T03:10:10Z,r2,Noise,{text},app,c1\n"
    path = write(tmp_path, "t.csv", INCIDENTS + INCIDENT + row + INCIDENT)
    events, bad = read_skip(path)
    assert bad == []
    reports = [e for e in events if isinstance(e, IncidentReport)]
    assert [e.report_id for e in reports] == ["r1", "r2", "r1"]
    assert reports[1].text == text[1:-1].replace('""', '"')


def test_a_stray_quote_closed_by_a_later_rows_quote_still_costs_only_its_row(
    tmp_path: Path,
) -> None:
    """The text is kept whole only when it closes on a line that is no row: a stray
    quote closed by a quote in a later row (a text spanning lines) is still a stray."""
    stray = '2024-05-27T03:10:10Z,r2,Noise,"oops,app,c1\n'
    later = '2024-05-27T03:10:12Z,r3,Noise,"two\nlines",app,c1\n'
    path = write(tmp_path, "t.csv", INCIDENTS + stray + INCIDENT + later + INCIDENT)
    events, bad = read_skip(path)
    assert [b.line for b in bad] == [2]
    assert [e.report_id for e in events if isinstance(e, IncidentReport)] == ["r1", "r1", "r3"]


@pytest.mark.parametrize("blank", ["   ", "\t", " \t ", '""'])
def test_a_line_of_spaces_alone_is_no_row_as_an_empty_one_is(tmp_path: Path, blank: str) -> None:
    """t162: a line of spaces or tabs (a file's last, padded by an editor) was a bad row,
    "row has 1 fields, expected 6", which stopped a replay; an empty line is no row."""
    path = write(tmp_path, "r.csv", f"{blank}\n{READINGS}{ROW}{blank}\r\n{ROW}\n{blank}")
    events, bad = read_skip(path)
    assert bad == [] and len(events) == 2


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("1,5", " (a decimal comma in 1,5? write 1.5)"),
        ("-12,75", " (a decimal comma in -12,75? write -12.75)"),
        ("1,000", " (a decimal comma or a thousands separator in 1,000? write 1.000 or 1000)"),
        (
            "1,x",
            ": read as timestamp '2024-05-27T03:10:10Z', sensor_id 's1', kind 'pm25', "
            "value '1', unit 'x', grid_cell 'ug/m3', and 'c1' over",
        ),
    ],
)
def test_a_value_split_at_a_comma_is_said_as_one(tmp_path: Path, value: str, hint: str) -> None:
    """t162: replay said only "row has 7 fields, expected 6" of an unquoted 1,5, where
    detect names the decimal comma."""
    path = write(tmp_path, "r.csv", f"{READINGS}2024-05-27T03:10:10Z,s1,pm25,{value},ug/m3,c1\n")
    _, bad = read_skip(path)
    assert [b.reason for b in bad] == [f"row has 7 fields, expected 6{hint}"]


@pytest.mark.parametrize(
    ("first", "hint"),
    [
        ("sep=,", "(Excel's 'sep=,' line: delete it, the first line must be the header)"),
        ("# exported 2024-05-27", "(a comment line? delete it: the first line must be the header)"),
    ],
)
def test_an_excel_sep_line_or_a_comment_before_the_header_is_said_as_one(
    tmp_path: Path, first: str, hint: str
) -> None:
    """t162: `sep=,` (Excel writes it when asked) or a `#` comment line first was refused
    as a header naming what was expected, with no word on what the line is."""
    path = write(tmp_path, "r.csv", f"{first}\n{READINGS}{ROW}")
    with pytest.raises(FeedError) as info:
        load_events([path])
    assert str(info.value).startswith(f"{path}:1: header is ") and str(info.value).endswith(hint)


def test_byte_order_marks_of_files_joined_together_are_dropped(tmp_path: Path) -> None:
    """t162: two files written with a byte order mark and joined with `cat`: the second
    header was a row whose timestamp is '\\ufefftimestamp' (not "the header row again"), a
    row starting with one was refused for its timestamp, and a file starting with two
    marks had a header '\\ufefftimestamp,…'."""
    bom = b"\xef\xbb\xbf"
    data = bom * 2 + READINGS.encode() + ROW.encode() + bom + ROW.encode() + bom + READINGS.encode()
    events, bad = read_skip(write(tmp_path, "joined.csv", data))
    assert len(events) == 2
    assert [(b.line, b.reason) for b in bad] == [
        (4, "the header row again (files joined together?)")
    ]


def _just_under(limit: int) -> str:
    """A reading row of sensor 's' whose own message (JSON and key) is just under
    ``limit`` bytes, and whose pack of one is over it (a pack adds up to 16 bytes)."""
    for n in range(limit, 0, -1):
        event = Reading(1_716_779_410.0, "s", "pm25", 1.5, "ug/m3", "c" * n)
        if len(event.to_json()) + len(event_key(event)) <= limit:
            assert alone_in_pack_bytes(event) > limit  # the case this row stands for
            return f"2024-05-27T03:10:10Z,s,pm25,1.5,ug/m3,{'c' * n}\n"
    raise AssertionError("no such row")


def test_a_reading_larger_as_a_pack_than_alone_is_a_bad_row_of_a_packed_replay(
    tmp_path: Path,
) -> None:
    """t162: the check took a reading whose own message fit --max-message-bytes, and the
    packer (--pack) then refused its pack of one, 16 bytes larger: PackTooLargeError
    ended the replay part-way as "unexpected error, a bug" (exit 70). A packed replay
    checks a reading as a pack too; an unpacked one as the message it sends."""
    path = write(tmp_path, "edge.csv", READINGS + ROW + _just_under(2_000) + ROW)
    bad: list[BadRow] = []
    events = list(read_canonical(path, bad.append, max_message_bytes=2_000, packed=True))
    assert len(events) == 2 and [b.line for b in bad] == [3]
    assert "bytes as a pack (--pack), more than the 2,000 a Kafka message may hold" in (
        bad[0].reason
    )
    assert len(list(read_canonical(path, None, max_message_bytes=2_000))) == 3


def test_a_reading_the_packer_refuses_costs_only_itself(tmp_path: Path) -> None:
    """t162: a reading too large for a pack of its own, handed to a packed replay that
    did not check it, is counted as refused and the rest are sent (PackTooLargeError
    escaped the replay, exit 70, and the readings the packer held were never sent)."""
    path = write(tmp_path, "edge.csv", READINGS + ROW + _just_under(2_000) + ROW)
    events = list(read_canonical(path, None, max_message_bytes=2_000))
    replayer = Replayer.__new__(Replayer)
    replayer.producer, replayer.packer = _Producer(), ReadingPacker(1, 10, 2_000)
    replayer.readings_topic, replayer.incidents_topic = "r", "i"
    stats = replayer.replay(events, None)
    assert (stats.readings, stats.failed, stats.failed_readings) == (3, 1, 1)
    assert stats.first_failure.startswith("PackTooLargeError: reading of sensor 's' is ")
    [pack] = replayer.producer.sent
    assert [r["sensor_id"] for r in orjson.loads(pack)["readings"]] == ["s1", "s1"]


class _Sent:
    def add_callback(self, _: object) -> None:
        pass

    def add_errback(self, _: object) -> None:
        pass


class _Producer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, topic: str, key: bytes, value: bytes, partition: int | None) -> _Sent:
        self.sent.append(value)
        return _Sent()

    def flush(self, timeout: float | None = None) -> None:
        pass


# -- fuzz --------------------------------------------------------------------------------

PIECES = st.sampled_from(
    [
        ROW,
        INCIDENT,
        READINGS,
        '"',
        '""',
        ",",
        "\n",
        "\r\n",
        "\r",
        "\x00",
        "\ufeff",
        "2024-05-27T03:10:10Z",
        "nan",
        "1e999",
        "-0",
        "é",
        "x" * 5000,
    ]
)
FILES = st.one_of(
    st.binary(max_size=400),
    st.lists(st.one_of(PIECES, st.text(max_size=8)), max_size=40).map(
        lambda parts: "".join(parts).encode("utf-8", "surrogatepass")
    ),
    st.tuples(st.sampled_from([READINGS, INCIDENTS]), st.lists(PIECES, max_size=30)).map(
        lambda t: (t[0] + "".join(t[1])).encode("utf-8", "surrogatepass")
    ),
    st.tuples(
        st.sampled_from([READINGS, INCIDENTS]), st.binary(max_size=200), st.binary(max_size=4)
    ).map(lambda t: t[0].encode() + ROW.encode() + t[1] + INCIDENT.encode() + t[2]),
)


@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=FILES, gz=st.booleans())
def test_fuzz_any_bytes_give_rows_or_file_line_errors(
    tmp_path: Path, data: bytes, gz: bool
) -> None:
    path = write(tmp_path, "fuzz.csv.gz" if gz else "fuzz.csv", data)
    line_error = re.compile(rf"^{re.escape(str(path))}:\d+: \S")
    try:
        records = list(read_records(path, looks_like_row(6)))  # raises only for UTF-16
    except FeedError as exc:
        assert line_error.match(str(exc)), str(exc)
        records = []
    rows = sum(1 for r in records[1:] if isinstance(r, BadRow | Record))
    try:
        events, bad = read_skip(path)
    except FeedError as exc:  # a file-level fault: empty, header or encoding
        assert line_error.match(str(exc)), str(exc)
        return
    assert len(events) + len(bad) == rows
    assert all(line_error.match(str(b)) for b in bad)
    try:
        stop = load_events([path])
    except FeedError as exc:
        assert bad and str(exc) == str(bad[0])
    else:
        assert not bad and stop == events


CORRUPTIONS = st.sampled_from(['"', "\xff", "\xe9", "\x00", ",", "", '""'])


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(1, 12),
    damage=st.lists(
        st.tuples(st.integers(0, 11), st.integers(0, 60), CORRUPTIONS, st.booleans()), max_size=4
    ),
)
def test_fuzz_a_damaged_row_never_costs_an_intact_one(
    tmp_path: Path, n: int, damage: list[tuple[int, int, str, bool]]
) -> None:
    """Rows with stray quotes, foreign bytes, NULs, extra or missing commas: each damaged
    row is read or reported on its own line, every intact row is read, none is merged."""
    lines = [f"2024-05-27T03:{i:02d}:00Z,s{i},pm25,{i}.5,ug/m3,c1\n".encode() for i in range(n)]
    damaged = set()
    for row, at, piece, delete in damage:
        if row >= n:
            continue
        line = lines[row]
        at = min(at, len(line) - (2 if delete else 1))  # the newline stays
        tail = line[at + 1 :] if delete else line[at:]
        lines[row] = line[:at] + piece.encode("latin-1") + tail
        damaged.add(row)
    path = write(tmp_path, "d.csv", READINGS.encode() + b"".join(lines))
    events, bad = read_skip(path)
    read = {e.sensor_id for e in events if isinstance(e, Reading)}
    assert {f"s{i}" for i in range(n) if i not in damaged} <= read
    # Damaged lines only: a bad row is one record, which may span adjacent damaged lines
    # (a quote opened in one and closed in the next).
    assert len(events) + len(bad) <= n
    assert all("\n" not in e.sensor_id and "\n" not in e.unit for e in events)
    assert sorted(b.line for b in bad) == sorted(set(b.line for b in bad))
    assert {b.line - 2 for b in bad} <= damaged


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=FILES, block=st.sampled_from([1, 2, 3, 7, 64]))
def test_fuzz_block_boundaries_do_not_change_what_is_read(
    tmp_path: Path, data: bytes, block: int
) -> None:
    """The reader reads 256 kB at a time; a CR, a CRLF, a BOM or a UTF-8 sequence cut by a
    block boundary reads the same as whole."""
    path = write(tmp_path, "b.csv", data)

    def read() -> list[Record | BadRow] | str:
        try:
            return list(read_records(path, looks_like_row(6)))
        except FeedError as exc:
            return str(exc)

    whole = read()
    with patch.object(csvfile, "BLOCK", block):
        assert read() == whole


# -- consecutive faults of different kinds (issue 12 item 9) ----------------------------------


def _data_row(i: int) -> bytes:
    return f"2024-05-27T03:{i:02d}:00Z,s{i},pm25,{i}.5,ug/m3,c1\n".encode()


def test_a_stray_quote_then_a_latin1_byte_are_two_bad_rows(tmp_path: Path) -> None:
    """The field case: line 7 opens a quote it never closes, line 8 has byte 0xe9. They
    were one bad row ("7: byte 0xe9 at line 8") and the stray quote was never named."""
    lines = [_data_row(i) for i in range(10)]
    lines[5] = b'2024-05-27T03:05:00Z,"s5,pm25,5.5,ug/m3,c1\n'  # line 7
    lines[6] = b"2024-05-27T03:06:00Z,s\xe96,pm25,6.5,ug/m3,c1\n"  # line 8
    path = write(tmp_path, "broken.csv", READINGS.encode() + b"".join(lines))
    events, bad = read_skip(path)
    assert [str(b) for b in bad] == [
        f"{path}:7: a quoted field opens here and is not closed before line 8, which reads "
        "as a row of its own (a stray quote?)",
        f"{path}:8: byte 0xe9 at column 23 is not UTF-8 (a Latin-1 or Windows-1252 file? "
        "save it as UTF-8)",
    ]
    assert [e.sensor_id for e in events if isinstance(e, Reading)] == [
        f"s{i}" for i in range(10) if i not in (5, 6)
    ]
    assert len(events) + len(bad) == 10


# A fault that makes its line a bad row on its own, placed after the timestamp so the line
# still reads as a row start: an unclosed quote opening a field, a foreign byte, a NUL.
FAULTS = {
    "quote": lambda line: line.replace(b",s", b',"s', 1),
    "latin1": lambda line: line.replace(b",s", b",s\xe9", 1),
    "ff": lambda line: line.replace(b",pm25", b",pm\xff25", 1),
    "nul": lambda line: line.replace(b",ug/m3", b",ug\x00/m3", 1),
}


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(2, 12),
    start=st.integers(0, 11),
    faults=st.lists(st.sampled_from(sorted(FAULTS)), min_size=1, max_size=4),
    gz=st.booleans(),
)
def test_fuzz_consecutive_faults_of_any_kinds_are_each_their_own_bad_row(
    tmp_path: Path, n: int, start: int, faults: list[str], gz: bool
) -> None:
    """Faulty lines in a run (stray quote then bad byte, bad byte then stray quote, two
    stray quotes, quote then NUL, ...): each is reported under its own line number, every
    other line is read, and read = accepted + skipped counts every physical data row."""
    lines = [_data_row(i) for i in range(n)]
    start = min(start, n - 1)
    bad_lines = set()
    for offset, kind in enumerate(faults):
        row = start + offset
        if row < n:
            lines[row] = FAULTS[kind](lines[row])
            bad_lines.add(row + 2)  # the header is line 1
    path = write(tmp_path, "c.csv.gz" if gz else "c.csv", READINGS.encode() + b"".join(lines))
    events, bad = read_skip(path)
    assert sorted(b.line for b in bad) == sorted(bad_lines), [str(b) for b in bad]
    assert {e.sensor_id for e in events if isinstance(e, Reading)} == {
        f"s{i}" for i in range(n) if i + 2 not in bad_lines
    }
    assert len(events) + len(bad) == n
    records = list(read_records(path, looks_like_row(6)))[1:]
    assert len(records) == n
    with pytest.raises(FeedError, match=rf"^{re.escape(str(path))}:{min(bad_lines)}: "):
        load_events([path])


# -- more siblings: numbers Python reads too leniently, wide encodings, stretched times ---
@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("1_000", "decimal notation"),  # float() reads 1000
        ("\uff11\uff12", "decimal notation"),  # full-width digits: float() reads 12
        ("\u0661\u0662", "decimal notation"),  # Arabic-Indic digits: float() reads 12
        ("0x10", "decimal notation"),
        ("1,5", "fields"),  # a decimal comma unquoted is a seventh field
        ('"1,5"', "decimal notation"),
        ("nan", "finite"),
        ("-Infinity", "finite"),
        ("1e400", "finite"),
        # t183: read as 0.0 and replayed as a reading of 0, which the worker refuses.
        ("-1e-400", "not zero as written"),
        ("0." + "0" * 400 + "3", "not zero as written"),
    ],
)
def test_a_value_must_be_an_ascii_decimal_number(tmp_path: Path, value: str, says: str) -> None:
    row = f"2024-05-27T03:10:10Z,s1,pm25,{value},ug/m3,c1\n"
    events, bad = read_skip(write(tmp_path, "v.csv", READINGS + row + ROW))
    assert [b.line for b in bad] == [2] and says in bad[0].reason
    assert len(events) == 1  # the good row after it is read


@pytest.mark.parametrize("value", ["9" * 10_000 + "x", "9" * 5_000 + ".9" + "9" * 5_000 + "e"])
def test_a_long_run_of_digits_is_refused_at_once(tmp_path: Path, value: str) -> None:
    """The number pattern could split a run of digits anywhere: a value of 10,000 digits
    then an x took 20 s to refuse (100,000: hours), and replay and detect hung on it."""
    row = f"2024-05-27T03:10:10Z,s1,pm25,{value},ug/m3,c1\n"
    started = time.monotonic()
    events, bad = read_skip(write(tmp_path, "v.csv", READINGS + row + ROW))
    assert time.monotonic() - started < 5
    assert [b.line for b in bad] == [2] and "decimal notation" in bad[0].reason
    assert len(events) == 1
    assert len(bad[0].reason) < 300  # the value in its first 80 characters, not whole


@pytest.mark.parametrize("value", ["1.5", " 1.5 ", "+1.5", "15e-1", ".15e1", "1.50"])
def test_decimal_forms_read(tmp_path: Path, value: str) -> None:
    row = f"2024-05-27T03:10:10Z,s1,pm25,{value},ug/m3,c1\n"
    [event] = load_events([write(tmp_path, "v.csv", READINGS + row)])
    assert isinstance(event, Reading) and event.value == 1.5


@pytest.mark.parametrize(
    ("encoding", "says"),
    [
        ("utf-16-le", "UTF-16 without a byte order mark"),
        ("utf-16-be", "UTF-16 without a byte order mark"),
        ("utf-32", "UTF-32 (it starts with a UTF-32 byte order mark)"),  # said UTF-16 before
        ("utf-32-le", "UTF-32 without a byte order mark"),
    ],
)
def test_wide_encodings_are_named(tmp_path: Path, encoding: str, says: str) -> None:
    path = write(tmp_path, "w.csv", (READINGS + ROW).encode(encoding))
    with pytest.raises(FeedError, match=rf"w.csv:1: the file is {re.escape(says)}"):
        load_events([path], on_error="skip")


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le"])
@pytest.mark.parametrize("header", ["timestamp,value\n", "ts,value\r\n"])
def test_a_short_first_line_in_a_wide_encoding_is_named(encoding: str, header: str) -> None:
    # A short UTF-16LE header (detect's timestamp,value) was one NUL short of half its
    # bytes, counting the LF: it was "byte 0x00 (NUL) at column 2", not "UTF-16".
    first = header.encode(encoding).splitlines(keepends=True)[0]
    said = csvfile.wide_encoding(first)
    assert said is not None and said.startswith(encoding[:6].upper())


@pytest.mark.parametrize(
    "stamp",
    [
        "2024-05-27X03:10:10Z",  # fromisoformat takes any separator
        "20240527T031010Z",
        "9999-12-31T23:59:59-12:00",  # the year 10000 in UTC: to_json raised ValueError
        "0001-01-01T00:00:00+14:00",
    ],
)
def test_timestamps_python_would_stretch_are_bad_rows(tmp_path: Path, stamp: str) -> None:
    row = f"{stamp},s1,pm25,1.5,ug/m3,c1\n"
    events, bad = read_skip(write(tmp_path, "t.csv", READINGS + row + ROW))
    assert [b.line for b in bad] == [2] and "timestamp" in bad[0].reason
    for event in events:
        event.to_json()


def test_a_header_with_spaces_or_capitals_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, "h.csv", " Timestamp, sensor_id,kind,value,unit,grid_cell\n" + ROW)
    with pytest.raises(FeedError, match=r"h.csv:1: header is .*spaces or capitals"):
        load_events([path])


# -- a line longer than the limit (trial 21) --------------------------------------------


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("name", ["long.csv", "long.csv.gz"])
def test_a_line_longer_than_the_limit_is_a_bad_row_and_reading_goes_on(
    tmp_path: Path, end: bytes, name: str
) -> None:
    rows = [ROW.encode().rstrip(b"\n"), b"x" * 5000, ROW.encode().rstrip(b"\n")]
    path = write(tmp_path, name, end.join([READINGS.encode().rstrip(b"\n"), *rows]) + end)
    records = list(read_records(path, looks_like_row(6), max_line_bytes=1024))
    assert [r.line for r in records] == [1, 2, 3, 4]
    assert [str(r) for r in records if isinstance(r, BadRow)] == [
        f"{path}:3: the line is 5,000 bytes, longer than the 1,024 a line may have "
        "(CITYBRAIN_CSV_MAX_LINE_BYTES): not read, reading goes on after it"
    ]


def test_a_long_continuation_line_costs_its_record_and_names_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "q.csv",
        READINGS + '2024-05-27T03:10:10Z,s1,pm25,1.5,"ug/m3\n' + "y" * 3000 + '",c1\n' + ROW,
    )
    records = list(read_records(path, max_line_bytes=1024))
    assert isinstance(records[1], BadRow) and records[1].line == 2
    assert records[1].reason.startswith("line 3: the line is 3,004 bytes, longer than the 1,024")
    assert isinstance(records[2], Record) and records[2].line == 4


def test_a_200_mb_line_without_a_newline_is_read_past_in_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the reader gathered the line whole, looking for its end (200 MB held, a
    multi-gigabyte one until memory ran out). Now the limit, lowered here by its setting,
    refuses it and memory stays within a block and the limit; the rows before it are
    read, and the replay's reader goes on (a line that ends has rows after it)."""
    monkeypatch.setenv("CITYBRAIN_CSV_MAX_LINE_BYTES", "65536")
    size = 200 * 1024 * 1024
    chunk = b"x" * (1024 * 1024)
    for name, after in (("open.csv", b""), ("ended.csv", b"\n" + ROW.encode())):
        path = tmp_path / name
        with path.open("wb") as out:
            out.write((READINGS + ROW).encode())
            for _ in range(size // len(chunk)):
                out.write(chunk)
            out.write(after)
        bad: list[BadRow] = []
        tracemalloc.start()
        try:
            events = list(read_canonical(path, bad.append))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 8 * 1024 * 1024, f"{name}: {peak:,} bytes at the peak"
        assert [str(b) for b in bad] == [
            f"{path}:3: the line is {size:,} bytes, longer than the 65,536 a line may have "
            "(CITYBRAIN_CSV_MAX_LINE_BYTES): not read, reading goes on after it"
        ]
        assert len(events) == (2 if after else 1)
        path.unlink()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "expected a whole number of bytes"),
        ("1e6", "expected a whole number of bytes"),
        ("-5", "expected a whole number of bytes"),
        ("６５５３６", "expected a whole number of bytes"),
        ("65536.0", "expected a whole number of bytes"),
        ("1_000", "expected a whole number of bytes"),
        ("100", "expected at least 1024"),
    ],
)
def test_a_bad_line_limit_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    """A setting of streams/settings.py like the others (trial 26: it was read from the
    environment here), named in their words by the reader and by load_settings alike."""
    monkeypatch.setenv("CITYBRAIN_CSV_MAX_LINE_BYTES", value)
    said = f"CITYBRAIN_CSV_MAX_LINE_BYTES is {value!r}: {expected}"
    with pytest.raises(SettingsError) as err:
        csvfile.line_limit()
    assert str(err.value) == said
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value) == said


@pytest.mark.parametrize(("value", "limit"), [("", 1 << 20), ("65536", 65536), (" 2048 ", 2048)])
def test_the_line_limit_is_a_setting_with_its_default(
    monkeypatch: pytest.MonkeyPatch, value: str, limit: int
) -> None:
    monkeypatch.setenv("CITYBRAIN_CSV_MAX_LINE_BYTES", value)
    assert csvfile.line_limit() == limit
    assert load_settings().csv_max_line_bytes == limit
    assert Settings.model_fields["csv_max_line_bytes"].default == csvfile.MAX_LINE_BYTES


LONG_FILES = st.lists(
    st.one_of(
        st.sampled_from([ROW.encode(), b"x" * 40 + b"\n", b"y" * 70, b"z" * 33 + b"\r", b"\r\n"]),
        st.binary(max_size=80),
    ),
    max_size=12,
).map(lambda parts: READINGS.encode() + b"".join(parts))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=LONG_FILES, block=st.sampled_from([1, 2, 3, 7, 64]))
def test_fuzz_long_lines_read_the_same_across_block_boundaries(
    tmp_path: Path, data: bytes, block: int
) -> None:
    """Lines over a small limit (32 bytes here) are read past block by block; what is read
    is the same whatever the block size, and each line over the limit is one bad row."""
    path = write(tmp_path, "l.csv", data)

    def read() -> list[Record | BadRow] | str:
        try:
            return list(read_records(path, looks_like_row(6), max_line_bytes=50))
        except FeedError as exc:
            return str(exc)

    whole = read()
    with patch.object(csvfile, "BLOCK", block):
        assert read() == whole


@pytest.mark.parametrize(
    ("header", "says"),
    [
        # t109: each was shown beside the expected headers only, to be compared by eye.
        ("timestamp,sensor_id,kind,value,unit", "(missing grid_cell)"),
        ("timestamp,report_id,category,text,source", "(missing grid_cell)"),
        (
            "timestamp,sensor_id,kind,value,unit,grid_cell,extra",
            "('extra' is not one of its columns: drop the column 'extra')",
        ),
        (
            "timestamp,sensor_id,kind,value,value,grid_cell",
            "column 'value' twice (columns 4 and 5)",
        ),
        ("sensor_id,timestamp,kind,value,unit,grid_cell", "(the same columns in another order"),
        # t174: a newcomer's own export was told the names, not the renames and the drop.
        (
            "time,sensor,kind,value,unit,cell,station",
            "(missing timestamp, sensor_id, grid_cell; 'time', 'sensor', 'cell', 'station' "
            "are not one of its columns: rename 'time' to timestamp, 'sensor' to sensor_id "
            "and 'cell' to grid_cell; drop the column 'station')",
        ),
        (
            "timestamp,sensor_id,kind,value,unit,grid_cell,station,lat",
            "('station', 'lat' are not one of its columns: drop the columns 'station', 'lat')",
        ),
        (
            "ts,sensorid,kind,value,units,grid_cell",
            "rename 'ts' to timestamp, 'sensorid' to sensor_id and 'units' to unit)",
        ),
        (
            "timestamp,report_id,complaint_type,description,source,grid_cell",
            "rename 'complaint_type' to category and 'description' to text)",
        ),
        # t200: a city portal's export was told "rename 'date' to timestamp", a name its
        # header does not hold ('Date'), and nothing of 'Value' and 'Unit', which then
        # refused the header once the renames were done.
        (
            "Date,ID,Parameter,Value,Unit,Cell",
            "rename 'Date' to timestamp, 'ID' to sensor_id, 'Parameter' to kind, 'Cell' to "
            "grid_cell, 'Value' to value and 'Unit' to unit)",
        ),
        (
            "timestamp,sensor_id,kind,value,unit, Grid Cell ,Station",
            "rename ' Grid Cell ' to grid_cell; drop the column 'Station')",
        ),
    ],
)
def test_a_header_says_how_it_differs_from_the_closer_one(
    tmp_path: Path, header: str, says: str
) -> None:
    with pytest.raises(FeedError) as info:
        load_events([write(tmp_path, "h.csv", header + "\n" + ROW)])
    assert says in str(info.value) and "\n" not in str(info.value)


def test_a_decimal_comma_in_a_quoted_value_is_said(tmp_path: Path) -> None:
    # t109: "expected a number in decimal notation (...)" alone.
    row = '2024-05-27T03:10:10Z,s1,pm25,"1,5",ug/m3,c1\n'
    events, bad = read_skip(write(tmp_path, "c.csv", READINGS + row + ROW))
    assert len(events) == 1 and [b.line for b in bad] == [2]
    assert bad[0].reason.endswith("(a decimal comma? send 1.5, with a point)")


@pytest.mark.parametrize(
    ("row", "says"),
    [
        (
            "2024-05-27T03:10:10Z,s1,pm25,1.5,c1",
            "row has 5 fields, expected 6: read as timestamp '2024-05-27T03:10:10Z', "
            "sensor_id 's1', kind 'pm25', value '1.5', unit 'c1', and none for grid_cell",
        ),
        (
            "2024-05-27T03:10:10Z,s1,pm25,1.5,ug/m3,c1,gauge north,x,y,z",
            "row has 10 fields, expected 6: read as timestamp '2024-05-27T03:10:10Z', "
            "sensor_id 's1', kind 'pm25', value '1.5', unit 'ug/m3', grid_cell 'c1', and "
            "'gauge north', 'x', 'y', … over",
        ),
        (
            "2024-05-27T03:10:10Z",
            "row has 1 fields, expected 6: read as timestamp '2024-05-27T03:10:10Z' and "
            "none for sensor_id, kind, value, unit, grid_cell",
        ),
    ],
)
def test_a_row_too_narrow_or_too_wide_names_each_field_and_value(
    tmp_path: Path, row: str, says: str
) -> None:
    """t204: a row of too few or too many fields was 'row has 5 fields, expected 6' alone:
    which field was left out or over, and with what value, was for the reader to find."""
    _, bad = read_skip(write(tmp_path, "r.csv", f"{READINGS}{ROW}{row}\n{ROW}"))
    assert [(b.line, b.reason) for b in bad] == [(3, says)]
