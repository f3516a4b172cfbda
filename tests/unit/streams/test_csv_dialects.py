"""CSV files as real tools and open-data portals write them (t188): each row is read
right, or is a ``file:line: reason`` naming the field and value and what to change;
never a row silently merged, split, shifted or lost. Every CSV reader of citybrain
(replay, detect, rehearse) is held to it.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citybrain.detect import DetectInputError, Extras, read_series
from citybrain.rehearse import RehearsalError, read_incidents
from streams.csvfile import BadRow, RowWriter, decimal
from streams.errors import FeedError
from streams.events import IncidentReport, Reading
from streams.feeds import load_events

READINGS = "timestamp,sensor_id,kind,value,unit,grid_cell\n"
INCIDENTS = "timestamp,report_id,category,text,source,grid_cell\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def read_skip(path: Path) -> tuple[list[Reading | IncidentReport], list[BadRow]]:
    bad: list[BadRow] = []
    return load_events([path], on_error="skip", bad_rows=bad), bad


# -- a header row again, unlike the file's ---------------------------------------------


def test_rows_under_a_header_in_another_order_are_not_read_by_the_first_one(
    tmp_path: Path,
) -> None:
    """Two exports joined with `cat`, the second with its columns in another order: its
    header was a bad row ('field "timestamp" is 'timestamp''), and the rows under it were
    read by the first header, each reading sent with its sensor_id and grid_cell swapped,
    unsaid. Now the second header and its rows are bad rows saying why, and a header like
    the file's (any case, spaces around) ends them."""
    data = (
        READINGS
        + "2024-05-27T03:10:10Z,s1,pm25,1.5,ug/m3,c1\n"
        + "timestamp,grid_cell,kind,value,unit,sensor_id\n"
        + "2024-05-27T03:11:10Z,c1,pm25,1.6,ug/m3,s1\n"
        + "2024-05-27T03:12:10Z,c1,pm25,1.7,ug/m3,s1\n"
        + " Timestamp,sensor_id,kind,value,unit,grid_cell\n"
        + "2024-05-27T03:13:10Z,s1,pm25,1.8,ug/m3,c1\n"
    )
    events, bad = read_skip(write(tmp_path, "joined.csv", data))
    assert [(e.sensor_id, e.grid_cell, e.value) for e in events if isinstance(e, Reading)] == [
        ("s1", "c1", 1.5),
        ("s1", "c1", 1.8),
    ]
    assert [b.line for b in bad] == [3, 4, 5, 6]
    assert bad[0].reason.startswith(
        "a header row again, unlike line 1's: the same columns in another order (files "
        "joined together?): the rows under it are not read"
    )
    assert bad[1].reason.startswith("a row under the header row at line 3, unlike line 1's")
    assert bad[3].reason == "the header row again (files joined together?)"


@pytest.mark.parametrize(
    ("again", "unlike"),
    [
        (
            "Timestamp,report_id,complaint_type,text,source,grid_cell",
            "other columns ('complaint_type' for 'category')",
        ),
        ("timestamp,report_id,category,text,source,grid_cell,agency", "more columns ('agency')"),
        ("timestamp,report_id,category,text,grid_cell", "fewer columns (no 'source')"),
        ("timestamp,report_id,category,text,text,grid_cell", "'text' given twice"),
    ],
)
def test_a_header_row_of_other_columns_is_said_with_them(
    tmp_path: Path, again: str, unlike: str
) -> None:
    _, bad = read_skip(write(tmp_path, "joined.csv", f"{INCIDENTS}{again}\n"))
    assert [b.reason.split(" (files")[0] for b in bad] == [
        f"a header row again, unlike line 1's: {unlike}"
    ]


def test_detect_reads_no_row_under_a_header_in_another_order(tmp_path: Path) -> None:
    """detect's extra columns were written under each other's names: a second export's
    rows, under `timestamp,value,sensor,station`, were kept as station,sensor."""
    path = write(
        tmp_path,
        "s.csv",
        "timestamp,value,station,sensor\n2020-01-01 00:00:00,1,st,se\n"
        "timestamp,value,sensor,station\n2020-01-01 00:01:00,2,se,st\n",
    )
    bad: list[str] = []
    extras = Extras()
    stamps, _, _ = read_series(path, bad.append, extras=extras)
    assert stamps == ["2020-01-01 00:00:00"] and extras.rows == [["st", "se"]]
    assert [b.split(": ", 1)[0] for b in bad] == [f"{path}:3", f"{path}:4"]
    assert "unlike line 1's: the same columns in another order" in bad[0]


def test_rehearse_reads_no_row_under_a_header_in_another_order(tmp_path: Path) -> None:
    """rehearse read the reports under a second header by the first: category for text."""
    path = write(
        tmp_path,
        "in.csv",
        INCIDENTS
        + "2024-05-27T00:00:00Z,r1,Noise,loud music,app,c-top\n"
        + "timestamp,report_id,text,category,source,grid_cell\n"
        + "2024-05-27T00:01:00Z,r2,loud music,Noise,app,c-top\n",
    )
    bad: list[BadRow] = []
    found = read_incidents(
        path, {"c-top"}, {"police"}, lambda texts: ["police"] * len(texts), on_bad_row=bad.append
    )
    assert [(i.report_id, i.category) for i in found.incidents] == [("r1", "Noise")]
    assert [b.line for b in bad] == [3, 4]


# -- reasons that say what the line is and what to change -------------------------------

ROW = "2024-05-27T03:10:10Z,s1,pm25,1.5,ug/m3,c1"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            "# exported by the portal, 2024-05-27",
            "a comment line ('# exported by the portal, 2024-05-27'): the format has none; "
            "delete it (a row commented out: delete its #)",
        ),
        (f"#{ROW}", f"a comment line ('#{ROW}'): the format has none; delete it (a row"),
        (f"{ROW},", "row has 7 fields, expected 6 (a comma at its end? delete it)"),
        (
            "2024-05-27T03:10:10Z,s1,pm25,1,234.5,ug/m3,c1",
            "row has 7 fields, expected 6 (a thousands separator in 1,234.5? write 1234.5)",
        ),
        (
            '2024-05-27T03:10:10Z,s1,pm25,"1,234.5",ug/m3,c1',
            "(digits grouped by ','? send 1234.5, no separators, with a point)",
        ),
        (
            '2024-05-27T03:10:10Z,s1,pm25,"1.234,5",ug/m3,c1',
            "(digits grouped by '.' and a decimal comma? send 1234.5, no separators, with a point)",
        ),
    ],
)
def test_a_line_no_row_is_said_as_what_it_is(tmp_path: Path, line: str, reason: str) -> None:
    """t188: a comment line was "row has 1 fields, expected 6", a row commented out a
    timestamp '#2024-…' that is not one, a trailing comma and an unquoted 1,234.5 only
    "row has 7 fields", a quoted 1,234.5 or 1.234,5 "expected a number" alone: none said
    what the line is, nor what to change. The rows around it are read."""
    events, bad = read_skip(write(tmp_path, "r.csv", f"{READINGS}{ROW}\n{line}\n{ROW}\n"))
    assert len(events) == 2 and [b.line for b in bad] == [3]
    assert reason in bad[0].reason, bad[0].reason


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("1,234,567", "grouped by ','? send 1234567, no separators"),
        ("1.234.567", "grouped by '.'? send 1234567, no separators"),
        (
            "1 234,5",
            "grouped by a space and a decimal comma? send 1234.5, no separators, with a point",
        ),
        (
            "1\u202f234,5",
            "a narrow no-break space and a decimal comma? send 1234.5, no separators, with a point",
        ),
        ("-1,234.", "grouped by ','? send -1234, no separators"),
    ],
)
def test_a_number_with_thousands_separators_says_the_number_to_send(text: str, hint: str) -> None:
    with pytest.raises(ValueError) as info:
        decimal(text)
    assert str(info.value).endswith(f"{hint})")


def test_detect_says_a_comment_line_and_a_trailing_comma(tmp_path: Path) -> None:
    """detect said a trailing comma was a decimal comma ('write 1.5, or quote the
    value'), and a comment line a timestamp that is not one."""
    path = write(
        tmp_path,
        "s.csv",
        "timestamp,value\n# from the portal\n2020-01-01 00:00:00,1,\n2020-01-01 00:01:00,2\n",
    )
    bad: list[str] = []
    stamps, _, _ = read_series(path, bad.append)
    assert stamps == ["2020-01-01 00:01:00"]
    assert bad == [
        f"{path}:2: a comment line ('# from the portal'): the format has none; delete it (a "
        "row commented out: delete its #)",
        f"{path}:3: row has 3 fields, expected 2 (a comma at its end? delete it)",
    ]


def test_rehearse_says_a_comment_line_and_a_trailing_comma(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "in.csv",
        INCIDENTS
        + "# exported 2024-05-27\n"
        + "2024-05-27T00:00:00Z,r1,Noise,loud music,app,c-top,\n"
        + "2024-05-27T00:01:00Z,r2,Noise,#loud music,app,c-top\n",
    )
    bad: list[BadRow] = []
    found = read_incidents(
        path, {"c-top"}, {"police"}, lambda texts: ["police"] * len(texts), on_bad_row=bad.append
    )
    assert [i.report_id for i in found.incidents] == ["r2"]
    assert [b.reason.split(":")[0] for b in bad] == [
        "a comment line ('# exported 2024-05-27')",
        "row has 7 fields, expected 6 (a comma at its end? delete it)",
    ]


@pytest.mark.parametrize(
    "row",
    [
        '2024-05-27T03:10:10Z,r1,Noise,"he said \\"stop\\" now",app,c1',
        '2024-05-27T03:10:10Z,r1,Noise,"he said \\"stop, now\\"",app,c1',
        '2024-05-27T03:10:10Z,r1,Noise,"ends in a quote \\"",app,c1',
    ],
)
def test_a_quote_escaped_with_a_backslash_is_said_as_one(tmp_path: Path, row: str) -> None:
    """MySQL's exports and pandas' escapechar write a quote in a quoted text as \\":
    the row was refused telling to write "" (or as a stray quote), not that \\" was
    read as a closing quote. The next report is read."""
    data = f"{INCIDENTS}{row}\n2024-05-27T03:11:10Z,r2,Noise,loud,app,c1\n"
    events, bad = read_skip(write(tmp_path, "i.csv", data))
    assert [e.report_id for e in events if isinstance(e, IncidentReport)] == ["r2"]
    assert [b.line for b in bad] == [2]
    assert bad[0].reason.endswith(
        "(a quote escaped with a backslash, \\\", as MySQL or pandas' escapechar write it? "
        'write it as "")'
    )


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (
            "sep=;\ntimestamp;sensor_id;kind;value;unit;grid_cell\n",
            "(Excel's 'sep=;' line: delete it, the first line must be the header; and the file "
            "is `;`-separated: save it with commas between fields and . as the decimal point)",
        ),
        (
            READINGS.replace("\n", ",\n") + ROW + ",\n",
            "(a comma at the end of the line: delete it, and those at the ends of the rows)",
        ),
    ],
)
def test_a_refused_header_says_all_there_is_to_change(tmp_path: Path, data: str, says: str) -> None:
    """t188: an Excel `sep=;` line was only to delete (the next refusal then said the file
    is `;`-separated); a trailing comma on every line was "('' is not one of its columns:
    drop the column '')"."""
    with pytest.raises(FeedError) as info:
        load_events([write(tmp_path, "h.csv", data)])
    assert str(info.value).endswith(says), str(info.value)


QUOTED_SEPARATED = (
    "(the file looks {}-separated, its fields quoted: save it with commas between fields "
    "and . as the decimal point)"
)


@pytest.mark.parametrize(("sep", "name"), [(";", "`;`"), ("\t", "tab"), ("|", "`|`")])
def test_a_file_of_other_separators_with_every_field_quoted_is_said_as_one(
    tmp_path: Path, sep: str, name: str
) -> None:
    """t215: a `;`-separated file with its fields in quotes (`"timestamp";"value"`, as
    LibreOffice and portals write it) was refused as 'a quoted field's closing quote is
    followed by something other than a comma (write a quote inside a quoted field as "")',
    where the same file unquoted is said to be `;`-separated. Replay, detect and rehearse
    say it alike; a comma file's row holding `"a";"b"` keeps the quoting hint."""
    quoted = [f'"{x}"' for x in INCIDENTS.strip().split(",")]
    says = QUOTED_SEPARATED.format(name)
    with pytest.raises(FeedError) as info:
        load_events([write(tmp_path, "r.csv", sep.join(quoted) + "\n")])
    assert str(info.value).endswith(f"{says} (in the header row)"), str(info.value)
    series = write(tmp_path, "s.csv", f'"timestamp"{sep}"value"\n"2020-01-01"{sep}"1,5"\n')
    with pytest.raises(DetectInputError) as info:
        read_series(series)
    assert says in str(info.value), str(info.value)
    bad: list[str] = []
    rows = write(tmp_path, "t.csv", f'timestamp,value\n"2020-01-01"{sep}"1,5"\n2020-01-02,2\n')
    stamps, _, _ = read_series(rows, bad.append)
    assert stamps == ["2020-01-02"] and len(bad) == 1 and says in bad[0], bad
    incidents = write(tmp_path, "in.csv", sep.join(quoted) + "\n")
    with pytest.raises(RehearsalError) as info:
        read_incidents(incidents, {"c-top"}, {"police"}, lambda texts: ["police"] * len(texts))
    assert says in str(info.value), str(info.value)
    comma = f'{INCIDENTS}2024-05-27T03:10:10Z,r1,Noise,"a"{sep}"b",app,c1\n'
    _, bad_rows = read_skip(write(tmp_path, "c.csv", comma))
    assert [b.reason.endswith('(write a quote inside a quoted field as "")') for b in bad_rows] == [
        True
    ]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (' "loud music"', "column 4 is ' \"loud music\"': a space before its opening quote, so "),
        (' "loud, music" ', "quotes were read as text (and a comma inside them split it): "),
    ],
)
def test_a_space_before_an_opening_quote_is_a_bad_row(tmp_path: Path, text: str, says: str) -> None:
    """t188: a file written with a space after each comma (`a, "b"`): RFC 4180 reads the
    quotes as text, so the report was sent with its text ' "loud music"', quotes and all,
    unsaid; with a comma inside, the row was one field too wide, said as no more."""
    data = f"{INCIDENTS}2024-05-27T03:10:10Z,r1,Noise,{text},app,c1\n"
    data += '2024-05-27T03:11:10Z,r2,Noise," ""Loud"" music, again",app,c1\n'
    events, bad = read_skip(write(tmp_path, "i.csv", data))
    # A text quoted right that starts with a space and a quote is read.
    assert [e.text for e in events if isinstance(e, IncidentReport)] == [' "Loud" music, again']
    assert [b.line for b in bad] == [2] and says in bad[0].reason, bad[0].reason


@pytest.mark.parametrize("text", ['say ""hi"" again', 'a 5"" pipe', 'he said ""'])
def test_a_quote_doubled_in_a_field_not_quoted_is_a_bad_row(tmp_path: Path, text: str) -> None:
    """t204: a writer that doubles quotes without quoting the field (`say ""hi""`) means
    one quote each; csv reads both as text, and the report was sent with its text
    `say ""hi""`, unsaid. A field quoted right holding two quotes in a row is read."""
    data = f"{INCIDENTS}2024-05-27T03:10:10Z,r1,Noise,{text},app,c1\n"
    data += '2024-05-27T03:11:10Z,r2,Noise,"say """"hi"""" again",app,c1\n'
    data += '2024-05-27T03:12:10Z,r3,Noise,5" pipe,app,c1\n'
    events, bad = read_skip(write(tmp_path, "i.csv", data))
    assert [e.text for e in events if isinstance(e, IncidentReport)] == [
        'say ""hi"" again',
        '5" pipe',  # a lone quote in a field not quoted is read as text, as before
    ]
    assert [b.line for b in bad] == [2], bad
    assert bad[0].reason.startswith("column 4 is ") and bad[0].reason.endswith(
        ": a quote doubled in a field that is not quoted, so both are read as text: put "
        "the field in quotes, or write each quote once"
    )


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ("2024-05-27T03:10:10Z, s1 ,pm25,1.5,ug/m3,c1", "sensor_id"),
        ("2024-05-27T03:10:10Z,s1,pm25 ,1.5,ug/m3,c1", "kind"),
        ("2024-05-27T03:10:10Z,s1,pm25,1.5,\tug/m3,c1", "unit"),
        ("2024-05-27T03:10:10Z,s1,pm25,1.5,ug/m3, c1", "grid_cell"),
    ],
)
def test_a_reading_field_with_spaces_around_it_is_a_bad_row(
    tmp_path: Path, row: str, field: str
) -> None:
    """t188: a padded sensor_id, kind, unit or grid_cell was sent as written, and the
    worker dead-letters it (no such kind, sensor or cell); a report's id and category
    were refused so already. The same text met first unpadded does not let it through."""
    events, bad = read_skip(write(tmp_path, "r.csv", f"{READINGS}{ROW}\n{row}\n{ROW}\n"))
    assert len(events) == 2 and [b.line for b in bad] == [3]
    assert bad[0].reason.startswith(f'field "{field}" is ') and bad[0].reason.endswith(
        ": white space around it: write it without"
    )


@pytest.mark.parametrize(
    ("header", "says"),
    [
        (
            "unique_key,created_date,agency,complaint_type,descriptor,incident_zip",
            "(an NYC 311 export (NYC Open Data)? replay takes canonical rows; write them from",
        ),
        (
            "Unique Key,Created Date,Closed Date,Agency,Complaint Type,Descriptor",
            "(an NYC 311 export (NYC Open Data)? replay takes canonical rows;",
        ),
        (
            "CallNumber,UnitID,IncidentNumber,CallType,CallDate,WatchDate",
            "(an SF fire calls export (DataSF)? replay takes canonical rows; write them from it:",
        ),
    ],
)
def test_a_portal_export_as_the_portal_gives_it_is_named(
    tmp_path: Path, header: str, says: str
) -> None:
    """t188: an NYC 311 or SF fire calls file as the portal gives it (its API's names or
    its page's) was refused showing its header and the canonical ones, no more."""
    with pytest.raises(FeedError) as info:
        load_events([write(tmp_path, "export.csv", f"{header}\n1,2,3,4,5,6\n")])
    assert says in str(info.value), str(info.value)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            "2024-05-27T03:10:10Z;s1;pm25;1,5;ug/m3;c1",
            "row has 2 fields, expected 6 (the row looks `;`-separated: write it with commas "
            "between fields and . as the decimal point)",
        ),
        (
            '2024-05-27T03:10:10Z,s1,pm25,"1.5" ,ug/m3,c1',
            "a quoted field's closing quote is followed by something other than a comma (spaces "
            "or tabs between it and the comma? delete them)",
        ),
        (
            "2024-05-27T03:10:10Z,s1\u00a0,pm25,1.5,ug/m3,c1",
            "field \"sensor_id\" is 's1\\xa0': white space around it: write it without",
        ),
    ],
)
def test_a_row_of_another_dialect_says_what_to_change(
    tmp_path: Path, line: str, reason: str
) -> None:
    """t188: a `;`-separated row under a comma header was 'row has 2 fields' alone; a
    space after a closing quote was told to write a quote as ""; a no-break space after
    a sensor id (a spreadsheet's) was sent as written."""
    events, bad = read_skip(write(tmp_path, "r.csv", f"{READINGS}{ROW}\n{line}\n{ROW}\n"))
    assert len(events) == 2 and [(b.line, b.reason) for b in bad] == [(3, reason)]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            "2024-05-27T03:10:10Z,s1,pm25\\, dust,1.5,ug/m3,c1",
            "row has 7 fields, expected 6 (a comma escaped with a backslash, \\,? quote the "
            'field instead: "a, b")',
        ),
        (
            "sep=,",
            "Excel's 'sep=,' line (files joined together?): delete it, and check the rows "
            "after it are separated by commas",
        ),
        ("sep=;", "Excel's 'sep=;' line (files joined together?): delete it"),
    ],
)
def test_mysql_and_excel_marks_in_the_middle_are_said(
    tmp_path: Path, line: str, reason: str
) -> None:
    """t188: MySQL's backslash before a comma, and an Excel sep= line of a second export
    joined on, were 'row has 7 fields' and 'row has 2 fields' alone."""
    _, bad = read_skip(write(tmp_path, "r.csv", f"{READINGS}{ROW}\n{line}\n{ROW}\n"))
    assert [b.line for b in bad] == [3] and bad[0].reason.startswith(reason), bad[0].reason


@pytest.mark.parametrize("text", ["\n2024-05-27T03:10:10Z,", "log:\n2024-05-27T03:10:10Z,s1,"])
def test_a_text_whose_last_line_starts_like_a_row_is_read_whole(tmp_path: Path, text: str) -> None:
    """t204 (found by the fuzz below): a report quoted right whose text's last line starts
    with a timestamp and a comma was refused as a stray quote: that line, closing the
    quote, read as the start of a row whose text spans lines. A real stray quote before
    such a line is still one."""
    quoted = '"' + text.replace('"', '""') + '"'
    rows = f"2024-05-27T03:11:10Z,r1,Noise,{quoted},app,c1\n2024-05-27T03:12:10Z,r2,N,b,app,c1\n"
    events, bad = read_skip(write(tmp_path, "i.csv", INCIDENTS + rows))
    assert bad == [] and [e.text for e in events if isinstance(e, IncidentReport)] == [text, "b"]
    stray = '2024-05-27T03:10:10Z,r0,Noise,"a stray quote,app,c1\n'
    events, bad = read_skip(write(tmp_path, "i.csv", INCIDENTS + stray + rows))
    assert [b.line for b in bad] == [2] and len(events) == 2


_TEXT = (
    st.lists(
        st.sampled_from([*'ab ,"#\\\n;\t\u00a0', "sep=", "2024-05-27T03:10:10Z"]),
        min_size=1,
        max_size=12,
    )
    .map("".join)
    .filter(lambda text: text.strip() != "")
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(_TEXT, min_size=1, max_size=6))
def test_fuzz_reports_written_by_rfc_4180_writers_read_back_whole(
    tmp_path: Path, texts: list[str]
) -> None:
    """What t188's checks refuse (a comment line, a sep= line, a space before a quote, a
    backslash before a quote or a comma, padding) is never a report a writer of RFC 4180
    (Python's csv, pandas, a spreadsheet) wrote right: each reads back whole, in order."""
    rows = [
        ["2024-05-27T03:10:10Z", f"r{i}", "Noise", text, "app", "c1"]
        for i, text in enumerate(texts)
    ]
    buffer = io.StringIO()
    RowWriter(buffer).writerows(rows)
    path = write(tmp_path, "w.csv", INCIDENTS + buffer.getvalue())
    events, bad = read_skip(path)
    assert bad == []
    assert [e.text for e in events if isinstance(e, IncidentReport)] == texts


@pytest.mark.parametrize(
    ("stamp", "says"),
    [
        ("2024-05-27T03:11:10", "timestamp has no time zone"),
        ("27/05/2024 03:11", "field \"timestamp\" is '27/05/2024 03:11'"),
        ("1716779470", "looks like epoch seconds"),
    ],
)
def test_a_stray_quote_does_not_swallow_a_next_row_whose_timestamp_is_bad(
    tmp_path: Path, stamp: str, says: str
) -> None:
    """t215: stray-quote recovery took a line as a row of its own only when its first
    field was a timestamp the format takes: a next row whose time lacked its zone, or was
    day first or epoch seconds, was swallowed into the stray quote's bad row ('not closed
    before line 4'), its own fault unsaid and the rows read one short. Now it is a bad row
    under its own line, in replay, detect and rehearse alike."""
    data = (
        INCIDENTS
        + '2024-05-27T03:10:10Z,r1,Noise,"he said hi,app,c1\n'
        + f"{stamp},r2,Noise,loud,app,c1\n"
        + "2024-05-27T03:12:10Z,r3,Noise,loud,app,c1\n"
    )
    events, bad = read_skip(write(tmp_path, "i.csv", data))
    assert [e.report_id for e in events if isinstance(e, IncidentReport)] == ["r3"]
    assert [b.line for b in bad] == [2, 3], bad
    assert "not closed before line 3" in bad[0].reason and says in bad[1].reason, bad
    rehearsed: list[BadRow] = []
    found = read_incidents(
        write(tmp_path, "in.csv", data.replace(",c1", ",c-top")),
        {"c-top"},
        {"police"},
        lambda texts: ["police"] * len(texts),
        on_bad_row=rehearsed.append,
    )
    assert [i.report_id for i in found.incidents] == ["r3"]
    assert [b.line for b in rehearsed] == [2, 3], rehearsed
    series = write(
        tmp_path,
        "s.csv",
        'timestamp,value,note\n2024-05-27T03:10:10Z,1,"open\n'
        + ("27/05/2024 03:11" if "/" in stamp else "2024-13-27 03:11")
        + ",2,x\n2024-05-27T03:12:10Z,3,y\n",
    )
    lines: list[str] = []
    stamps, _, _ = read_series(series, lines.append)
    assert stamps == ["2024-05-27T03:12:10Z"]
    assert [line.split(":")[1] for line in lines] == ["2", "3"], lines


@pytest.mark.parametrize("end", ["\n", "\r\n"])
def test_a_dos_end_of_file_mark_after_the_last_line_is_the_end_of_the_file(
    tmp_path: Path, end: str
) -> None:
    """t215: old Windows tools end a file with Ctrl-Z (0x1A) after its last line; it was
    a bad row ("row has 1 fields, expected 6: read as timestamp '\\x1a' … cut short?")
    that stopped a replay of a whole, good file. Now it ends the file; one on a line of
    its own in the middle is still a bad row."""
    rows = [READINGS.strip(), ROW, ROW.replace("03:10:10", "03:11:10")]
    path = tmp_path / "r.csv"
    path.write_bytes((end.join(rows) + end + "\x1a").encode())
    assert len(load_events([path])) == 2
    series = tmp_path / "s.csv"
    series.write_bytes(f"timestamp,value{end}2020-01-01,1{end}\x1a".encode())
    stamps, _, _ = read_series(series)
    assert stamps == ["2020-01-01"]
    middle = tmp_path / "m.csv"
    middle.write_bytes((end.join([*rows[:2], "\x1a", rows[2]]) + end).encode())
    events, bad = read_skip(middle)
    assert len(events) == 2 and [b.line for b in bad] == [3], bad
